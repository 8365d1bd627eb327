/* client: the vdifs client API (being written; see client.h). */
#include "client.h"
