#ifndef VDIFS_CLIENT_H
#define VDIFS_CLIENT_H
#endif
