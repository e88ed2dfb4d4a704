/* libcallout version macros. */
#ifndef CALLOUT_VERSION_H
#define CALLOUT_VERSION_H

#define CALLOUT_VERSION_MAJOR 0
#define CALLOUT_VERSION_MINOR 1
#define CALLOUT_VERSION_PATCH 0
#define CALLOUT_VERSION_STR   "0.1.0"
/* One number to compare against: 0xMMmmpp. */
#define CALLOUT_VERSION                                                                            \
	((CALLOUT_VERSION_MAJOR << 16) | (CALLOUT_VERSION_MINOR << 8) | CALLOUT_VERSION_PATCH)

#endif
