/*
 * calloutd.conf's value syntax: checks and conversions of strings that
 * know nothing of the parser's state (names, addresses, listen specs,
 * networks), shared by the files of the parser.
 */
#ifndef CD_CONFIG_SYNTAX_H
#define CD_CONFIG_SYNTAX_H

#include <stdbool.h>

#include "config.h"

/* ASCII classes of the file's characters (blanks: space and tab). */
bool cfg_is_digit(char c);
bool cfg_is_alpha(char c);
bool cfg_is_blank(char c);
char cfg_lower(char c);
bool cfg_is_print(char c);
bool cfg_all_print(const char *s);
bool cfg_has_blank(const char *s);

/* An absolute path without blanks (the reader already refused control
 * characters; UTF-8 is fine). */
bool cfg_valid_path(const char *s);

/* Digits only (no sign, no blanks), within [min, max]. */
bool cfg_parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out);

/* A port, 1 to 65535. */
bool cfg_parse_port(const char *s, unsigned *port);

/* yes/no, true/false, on/off, 1/0, in any case. */
bool cfg_parse_bool(const char *s, bool *out);

/* Letters, digits and hyphens in dot-separated labels of 1 to 63
 * characters, at most 253 in all (no trailing dot). */
bool cfg_valid_hostname(const char *s);

/* A numeric address of family (AF_INET, AF_INET6); of either. */
bool cfg_is_ip(int family, const char *s);
bool cfg_is_any_ip(const char *s);

/* A domain as written in the file: ASCII, lower-cased in place, one
 * trailing dot dropped.  A dotted-quad is not a domain. */
const char *cfg_normalise_domain(char *d);

/* local@domain, ASCII; the domain is lower-cased in place.  NULL or why not. */
const char *cfg_normalise_address(char *a);

/* "<a@b>" -> "a@b". */
char *cfg_strip_angles(char *v);

/* "IP[:PORT]", "[IPv6]:PORT" or a bare IPv6 address (c-ares' syntax). */
bool cfg_valid_dns_server(const char *s);

/* HOST[:PORT]: a host name (put in lower case), an IPv4 address or
 * [IPv6]. */
bool cfg_valid_route_host(char *s);

/* What a proxy pool's name may be: a word the HTTP API and the logs
 * show as it is. */
const char *cfg_bad_proxy_name(const char *v);

/* "ADDR[/PREFIX]" (IPv6 may be in brackets); host bits are cleared. */
bool cfg_parse_net(char *s, cd_net *net);

/* "unix:/path", "inet:IPv4:PORT" or "inet:[IPv6]:PORT". */
const char *cfg_parse_listen(const char *s, bool unix_ok, cd_listen *l);

/* libmilter's socket syntax, checked. */
const char *cfg_check_milter_listen(const char *s);

#endif
