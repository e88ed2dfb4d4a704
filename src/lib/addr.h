/* RFC 5321 mailbox parsing and normalisation. */
#ifndef CO_ADDR_H
#define CO_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#define CO_DOMAIN_MAX 255 /* octets of the domain (4.5.3.1.2) */
#define CO_PATH_MAX   256 /* octets of "<local@domain>" (4.5.3.1.3) */
/* Octets of the local part as sent.  RFC 5321's 64 (4.5.3.1.1) is widely
 * exceeded (SRS, VERP, BATV) and servers accept more: only the path
 * limit bounds it. */
#define CO_LOCAL_MAX (CO_PATH_MAX - 4)

/* co_addr_parse's refusals. */
#define CO_ADDR_SYNTAX   (-1) /* not a mailbox: no SMTP command can carry it */
#define CO_ADDR_TOO_LONG (-2) /* well-formed, but longer than we ask about */

typedef enum co_addr_kind {
	CO_ADDR_DOMAIN = 0, /* an ordinary domain: look up its MX */
	CO_ADDR_IPV4,       /* [192.0.2.1]: connect directly */
	CO_ADDR_IPV6        /* [IPv6:2001:db8::1]: connect directly */
} co_addr_kind;

typedef struct co_addr {
	co_addr_kind kind;
	bool utf8;                      /* local part has non-ASCII: needs SMTPUTF8 */
	char local[CO_LOCAL_MAX + 1];   /* local part in wire form (quoted when it must be) */
	char domain[CO_DOMAIN_MAX + 1]; /* lower-case A-label; for literals the bracketed
	                                   form as sent, e.g. "[192.0.2.1]" */
	char ip[64];                    /* literals only: the bare IP, e.g. "2001:db8::1"
	                                   (canonical form); "" for domains */
	char mailbox[CO_PATH_MAX + 1];  /* "local@domain" as sent inside <> */
} co_addr;

/*
 * Parse an address as a user types it: "user@example.com", optionally in
 * angle brackets, with surrounding blanks ignored.  Quoted local parts are
 * unquoted and requoted in minimal form; a dot-atom that needs no quoting
 * is kept as is; the domain (U-label or A-label) is folded to a lower-case
 * A-label with libidn2.
 *
 * Returns 0 and fills *out, or a refusal (below) and writes a short
 * English reason into err (errlen bytes, always NUL-terminated) leaving
 * *out undefined.  Never accepts CR, LF, NUL or other control characters
 * anywhere.
 *
 * CO_ADDR_SYNTAX is for what cannot be written in an SMTP command or
 * names no domain: control characters, unbalanced quotes or brackets,
 * characters outside the grammar, a domain over 255 octets or with a
 * label over 63.  Length alone is never a syntax error: a well-formed
 * address whose path is over CO_PATH_MAX (or input over 1000 octets) is
 * CO_ADDR_TOO_LONG, a limit of ours (the cache's records hold 255
 * octets), not evidence that the mailbox cannot exist.  A local part over
 * RFC 5321's 64 octets is accepted.
 *
 * Details: input over 1000 octets is refused before parsing; only blanks
 * (space, tab) around the address are ignored; the null path "<>" and
 * source routes are refused; a UTF-8 local part must be valid UTF-8 and
 * is kept as typed (no normalisation); an empty quoted local part ("")
 * is refused; a single-label domain is accepted, a bare dotted quad is
 * refused (write "[192.0.2.1]"), an "xn--" label must be valid Punycode;
 * address literals are IPv4 or "IPv6:" only (General-address-literals
 * are refused); ip holds the canonical inet_ntop form.
 */
int co_addr_parse(const char *input, co_addr *out, char *err, size_t errlen);

/*
 * A name we may send in EHLO/HELO: a syntactically valid domain (LDH
 * labels, ASCII) or an address literal.  Returns true when usable.
 */
bool co_helo_valid(const char *name);

/*
 * This host's name for EHLO/HELO when none is configured, into out (len
 * bytes): gethostname(), then its canonical name when it has no dot;
 * "localhost" when that is not a valid HELO name.
 */
void co_default_helo(char *out, size_t len);

/*
 * Fold a domain name (U-label or A-label, no trailing dot required) to a
 * lower-case A-label into out (CO_DOMAIN_MAX + 1 bytes).  Returns 0, or -1
 * with a reason in err.  Used for route domains too.
 */
int co_domain_normalise(const char *in, char *out, char *err, size_t errlen);

#endif
