/* SMTP reply parsing (RFC 5321 4.2) and EHLO capabilities. */
#ifndef CO_REPLY_H
#define CO_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#define CO_REPLY_LINE_MAX  1000 /* octets per line without CRLF, generous (RFC: 512) */
#define CO_REPLY_LINES_MAX 64   /* continuation lines per reply */
#define CO_REPLY_TEXT_MAX  512  /* text kept per reply, truncated after */

typedef struct co_reply {
	int code;                         /* 200..599 once the first line is seen */
	char enhanced[16];                /* "5.1.1" from the first line, or "" */
	char text[CO_REPLY_TEXT_MAX + 1]; /* text of all lines (after code and
	                                     enhanced code), joined by ' ',
	                                     non-printable bytes replaced by '?' */
	unsigned nlines;
	bool done; /* the last line ("250 ...") was seen */
} co_reply;

typedef enum co_reply_status {
	CO_REPLY_MORE = 0, /* a continuation line: feed the next one */
	CO_REPLY_DONE,     /* the reply is complete */
	CO_REPLY_ERROR     /* not a valid reply line: protocol error */
} co_reply_status;

void co_reply_init(co_reply *r);

/*
 * Feed one line (without its CRLF or LF; len octets, may contain any
 * byte).  Lines must start with three digits (first digit 2..5) followed
 * by ' ', '-' or end of line; all lines of one reply must carry the same
 * code; more than CO_REPLY_LINES_MAX lines is an error.
 */
co_reply_status co_reply_feed(co_reply *r, const char *line, size_t len);

/*
 * Parse an enhanced status code "c.sss.ddd" at the start of text whose
 * class digit matches code's first digit; copy it to out (16 bytes) and
 * return its length (0 when there is none).
 */
size_t co_enhanced_parse(int code, const char *text, size_t len, char out[16]);

typedef struct co_caps {
	bool pipelining;
	bool starttls;
	bool smtputf8;
	bool eightbitmime;
	bool enhancedstatuscodes;
	bool chunking;
	unsigned long size; /* SIZE limit, 0 when absent or unlimited */
} co_caps;

/* Read one EHLO reply line ("250-PIPELINING", "250 SIZE 1000") into caps.
 * The first line (the greeting with the server's name) is passed too and
 * must be ignored by the caller's counting: pass first=true for it. */
void co_caps_line(co_caps *caps, const char *line, size_t len, bool first);

#endif
