/*
 * Durations as people write them in the configuration file and on the
 * command line: one parser for both, so that "30s" means the same thing
 * everywhere.
 */
#ifndef CO_DURATION_H
#define CO_DURATION_H

#include <stdbool.h>
#include <stddef.h>

/* "N[.F][UNIT]" in milliseconds: UNIT ms, s, m, h or d; none means
 * seconds.  False for anything else (signs, blanks, an empty number, more
 * than 9 fraction digits, a value of 2^64 ms or more) and for a value
 * finer than 1 ms. */
bool co_duration_parse(const char *s, unsigned long long *ms);

/* ms in its largest whole unit: "300s", "1d", "500ms", "0". */
const char *co_duration_format(unsigned long long ms, char *buf, size_t len);

#endif
