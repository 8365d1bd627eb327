/*
 * test_rpc_util: helpers shared by the rpc unit tests that talk to a server
 * over raw loopback sockets.  Include after <cmocka.h>.
 */
#ifndef TEST_RPC_UTIL_H
#define TEST_RPC_UTIL_H

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>

/* A blocking TCP connection to 127.0.0.1:port whose reads give up after 5 s. */
static inline int test_raw_connect(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* Thread body: runs the event_base arg until event_base_loopbreak(). */
static inline void *test_loop_main(void *base)
{
	event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

#endif
