# free_port_base: a base port P with P..P+10 unused, for a cluster of one's
# own (sourced by tests/integration/lib.sh and the bench/ scripts).  Below
# the kernel's ephemeral range (ip_local_port_range, 32768 up by default),
# so no outgoing connection can be holding one of them; any socket on a
# port (not only a listener) makes it busy.
free_port_base() {
	local base i busy lo
	lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	[ "$lo" -gt 21000 ] 2>/dev/null || lo=32768
	for _ in $(seq 1 50); do
		base=$(( (RANDOM % ((lo - 20000) / 10 - 1)) * 10 + 20000 ))
		busy=0
		for i in $(seq 0 10); do
			if ss -Htan "sport = :$((base + i))" | grep -q .; then busy=1; break; fi
		done
		[ $busy -eq 0 ] && { echo $base; return 0; }
	done
	return 1
}
