/*
 * Cache records: what the cache keeps about an address or a domain, its
 * key, and its encoding.  Every backend stores the same bytes, so a
 * record written by one program is read by any other on the host or the
 * fleet.
 *
 * Keys (the Redis backend prepends its prefix):
 *   a:DOMAIN:MAILBOX           an address verified with MAIL FROM:<>
 *   a:DOMAIN:MAILBOX\tSENDER   ... with another MAIL FROM
 *   c:DOMAIN  n:DOMAIN  x:DOMAIN  b:DOMAIN  u:DOMAIN  p:DOMAIN   domain facts
 * DOMAIN is normalised (lower case A-labels, or an address literal), so
 * "a:DOMAIN:" is the prefix of every address of a domain.
 *
 * Encoding (version 1): "CO" 0x01, kind, verdict, reason, stage, flags,
 * code (u16), probed and expires (i64 seconds), seven strings each with a
 * one-octet length (domain, address, sender, enhanced, text, mx, ip),
 * then a CRC-32 of everything before it.  All integers big-endian.  A
 * record with another magic, version, length or checksum is damaged and
 * is ignored, never guessed at.  A kind added later (postmaster) is a new
 * key and a new kind octet in the same version: records written before
 * read as they did, and an older reader takes a newer kind for damaged
 * (it neither uses nor changes it; its purge deletes it).
 */
#ifndef CO_RECORD_H
#define CO_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"

#define CO_REC_VERSION     1
#define CO_REC_TEXT_MAX    200
#define CO_REC_STR_MAX     255 /* one length octet */
#define CO_REC_ENCODED_MAX (64 + 7 * (CO_REC_STR_MAX + 1))
#define CO_REC_KEY_MAX     (4 + CO_DOMAIN_MAX + 2 * CO_PATH_MAX)

typedef enum co_rec_kind {
	CO_REC_ADDRESS = 1, /* the answer for one address (and sender) */
	CO_REC_CATCH_ALL,   /* yes: a random local part was accepted; no: refused */
	CO_REC_NULL_SENDER, /* MAIL FROM:<> refused; sender: the fallback that worked */
	CO_REC_NO_MAIL,     /* NXDOMAIN, null MX or no host: reason says which */
	CO_REC_BLOCKS_US,   /* the domain's servers refuse us by policy */
	CO_REC_UNREACHABLE, /* every MX failed to answer */
	CO_REC_POSTMASTER,  /* verdict valid: postmaster@DOMAIN accepted; invalid:
	                       refused as unknown (never answers for an address) */
	CO_REC_KIND_COUNT
} co_rec_kind;

/* Flag bits. */
#define CO_REC_F_YES       0x01u /* CATCH_ALL: the domain is a catch-all */
#define CO_REC_F_CATCH_ALL 0x02u /* ADDRESS: answer came with a catch-all */
#define CO_REC_F_TLS       0x04u /* the answer came over TLS */

typedef struct co_rec {
	co_rec_kind kind;
	uint8_t verdict; /* callout_verdict */
	uint8_t reason;  /* callout_reason */
	uint8_t stage;   /* callout_stage */
	uint8_t flags;   /* CO_REC_F_* */
	uint16_t code;
	int64_t probed;  /* Unix time of the probe */
	int64_t expires; /* Unix time after which the record is not used */
	char domain[CO_DOMAIN_MAX + 1];
	char address[CO_REC_STR_MAX + 1]; /* ADDRESS: the mailbox */
	char sender[CO_REC_STR_MAX + 1];  /* ADDRESS: MAIL FROM, "" for <>;
	                                     NULL_SENDER: fallback that worked */
	char enhanced[16];
	char text[CO_REC_TEXT_MAX + 1];
	char mx[CO_REC_STR_MAX + 1];
	char ip[48];
} co_rec;

/* The stable name of a kind ("address", "catch_all", ...) or "?". */
const char *co_rec_kind_name(co_rec_kind k);

/* The key of a record; mailbox and sender only for CO_REC_ADDRESS
 * (sender NULL or "" for <>).  Returns its length, or 0 when it does not
 * fit in len (out is then ""). */
size_t co_rec_key(co_rec_kind kind, const char *domain, const char *mailbox, const char *sender,
                  char *out, size_t len);

/* The key of r itself. */
size_t co_rec_key_of(const co_rec *r, char *out, size_t len);

/* Encode into out (at least CO_REC_ENCODED_MAX octets); returns the
 * length.  Strings longer than a field are truncated. */
size_t co_rec_encode(const co_rec *r, uint8_t *out);

/* Decode; 0 on success, -1 when the bytes are not a valid record of a
 * version we know (r is then zeroed). */
int co_rec_decode(const uint8_t *in, size_t len, co_rec *r);

#endif
