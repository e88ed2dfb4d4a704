/*
 * The pure parts of the doctor (callout_doctor_start() in callout.h):
 * unit-tested and fuzzed.  The inside of a run is doctor_int.h.
 */
#ifndef CO_DOCTOR_PARSE_H
#define CO_DOCTOR_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* The DNSBL query name of sa under zone: "4.3.2.1.zone" for 1.2.3.4, 32
 * reversed nibbles for IPv6 (an IPv4-mapped IPv6 address as IPv4).  False
 * for another family or when out (len bytes) is too small. */
bool co_dnsbl_name(const struct sockaddr *sa, const char *zone, char *out, size_t len);

/* Find an RFC 5322 date-time ("[Day, ]D Mon YYYY HH:MM[:SS] ZONE", zone
 * +HHMM/-HHMM, UT, UTC, GMT, Z or a US zone name) anywhere in text (len
 * bytes, any bytes) and return it in Unix seconds in *out.  False when
 * there is none or it is not a valid date. */
bool co_banner_date(const char *text, size_t len, long long *out);

/* Unix seconds of the date in __DATE__-like s ("Jun  3 2024"), 00:00 UTC;
 * -1 when it does not parse. */
long long co_build_date(const char *s);

#endif
