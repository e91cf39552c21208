/* The one translation unit that holds the implementation for the public-API check (Makefile,
   compile_public_api): every example and tool is compiled without ARWKV_IMPLEMENTATION and linked
   with this file, as a user's program of several files would be. */
#define ARWKV_IMPLEMENTATION
#include "arwkv.h"
