/*
 * The Postfix policy delegation protocol's requests: "name=value" lines
 * ended by an empty line (SMTPD_POLICY_README).  Parsing only; bounded:
 * a line over CD_POLICY_LINE_MAX or a request over CD_POLICY_ATTRS_MAX
 * attributes is an error, never a larger allocation.
 */
#ifndef CD_POLICY_PARSE_H
#define CD_POLICY_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#define CD_POLICY_LINE_MAX  2048
#define CD_POLICY_ATTRS_MAX 64

/* The attributes calloutd uses; others are accepted and ignored.  The
 * addresses and names the decision is made on hold any value a line can
 * carry, so an over-long (invalid) address reaches the verification and is
 * refused there rather than slipping through as an unparsed request. */
typedef struct cd_policy_req {
	char request[32];        /* must be "smtpd_access_policy" */
	char protocol_state[16]; /* "RCPT", "MAIL", "DATA", ... */
	char client_address[64];
	char client_name[256];
	char helo_name[CD_POLICY_LINE_MAX];
	char sender[CD_POLICY_LINE_MAX];
	char recipient[CD_POLICY_LINE_MAX];
	char sasl_username[256];
	char queue_id[64];
	char instance[128];
	unsigned nattrs;   /* attribute lines fed, valid or not */
	unsigned seen;     /* bit per known attribute: duplicates are errors */
	const char *error; /* the first bad line's problem (static), or NULL */
} cd_policy_req;

typedef enum cd_policy_status {
	CD_POLICY_MORE = 0, /* an attribute line: feed the next */
	CD_POLICY_END,      /* the empty line: the request is complete */
	CD_POLICY_ERROR     /* not a valid line, or too many attributes */
} cd_policy_status;

void cd_policy_req_init(cd_policy_req *r);

/*
 * Feed one line without its LF (a CR before it is removed by the caller or
 * tolerated here).  A value too long for its field is an error.
 *
 * An error does not end the request: the caller keeps feeding lines up to
 * the empty line (END), and r->error then says the request as a whole is
 * not to be trusted.  Values are stored only from valid lines; a field
 * never holds a partial value.
 */
cd_policy_status cd_policy_feed(cd_policy_req *r, const char *line, size_t len);

#endif
