/* SOCKS5 client handshake (socks.h): greeting, optional RFC 1929
 * username/password, CONNECT, each reply checked byte by byte. */
#include <netinet/in.h>
#include <string.h>

#include "hostport.h"
#include "socks.h"

enum { S_GREETING = 0, S_AUTH, S_CONNECT, S_DONE, S_FAILED };

#define VER       5
#define M_NONE    0x00
#define M_USER    0x02
#define M_NONE_OK 0xff /* the proxy accepts none of ours */

/* ---- the handshake ------------------------------------------------------- */

static size_t greeting(const co_socks *s, unsigned char *out)
{
	bool auth = s->proxy->user[0] != '\0';

	out[0] = VER;
	out[1] = auth ? 2 : 1;
	out[2] = M_NONE;
	if (auth)
		out[3] = M_USER;
	return auth ? 4 : 3;
}

bool co_socks_begin(co_socks *s, const co_proxy *proxy, const struct sockaddr *addr,
                    unsigned char *out, size_t *outlen)
{
	memset(s, 0, sizeof(*s));
	s->proxy = proxy;
	if (addr->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)addr;
		s->target[0] = 1;
		memcpy(s->target + 1, &in->sin_addr, 4);
		memcpy(s->target + 5, &in->sin_port, 2);
		s->target_len = 7;
	} else if (addr->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)addr;
		s->target[0] = 4;
		memcpy(s->target + 1, &in6->sin6_addr, 16);
		memcpy(s->target + 17, &in6->sin6_port, 2);
		s->target_len = 19;
	} else {
		return false;
	}
	*outlen = greeting(s, out);
	return true;
}

bool co_socks_begin_name(co_socks *s, const co_proxy *proxy, const char *name, unsigned port,
                         unsigned char *out, size_t *outlen)
{
	size_t n = strlen(name);

	memset(s, 0, sizeof(*s));
	s->proxy = proxy;
	if (n == 0 || n > 255 || port == 0 || port > 65535)
		return false;
	s->target[0] = 3;
	s->target[1] = (unsigned char)n;
	memcpy(s->target + 2, name, n);
	s->target[2 + n] = (unsigned char)(port >> 8);
	s->target[3 + n] = (unsigned char)(port & 0xff);
	s->target_len = 4 + n;
	*outlen = greeting(s, out);
	return true;
}

bool co_socks_begin_check(co_socks *s, const co_proxy *proxy, unsigned char *out, size_t *outlen)
{
	memset(s, 0, sizeof(*s));
	s->proxy = proxy;
	*outlen = greeting(s, out);
	return true;
}

static size_t connect_request(const co_socks *s, unsigned char *out)
{
	out[0] = VER;
	out[1] = 1; /* CONNECT */
	out[2] = 0;
	memcpy(out + 3, s->target, s->target_len);
	return 3 + s->target_len;
}

static size_t auth_request(const co_socks *s, unsigned char *out)
{
	size_t u = strlen(s->proxy->user), p = strlen(s->proxy->pass);

	out[0] = 1; /* the subnegotiation's version */
	out[1] = (unsigned char)u;
	memcpy(out + 2, s->proxy->user, u);
	out[2 + u] = (unsigned char)p;
	memcpy(out + 3 + u, s->proxy->pass, p);
	return 3 + u + p;
}

/* RFC 1928's reply codes, as an operator reads them. */
static const char *reply_text(unsigned char rep)
{
	switch (rep) {
	case 1:
		return "the proxy failed (general SOCKS server failure)";
	case 2:
		return "the proxy's rules do not allow this connection";
	case 3:
		return "the proxy could not reach the host: network unreachable";
	case 4:
		return "the proxy could not reach the host: host unreachable";
	case 5:
		return "the proxy could not reach the host: connection refused";
	case 6:
		return "the proxy could not reach the host: TTL expired";
	case 7:
		return "the proxy does not support CONNECT";
	case 8:
		return "the proxy does not support this address type";
	default:
		return "the proxy answered with an unknown reply code";
	}
}

bool co_socks_asked(const co_socks *s)
{
	return s->state >= S_CONNECT;
}

bool co_socks_target_failed(const co_socks *s)
{
	return s->rep >= 3 && s->rep <= 6;
}

static co_socks_step fail(co_socks *s, const char **why, const char *text)
{
	s->state = S_FAILED;
	*why = text;
	return CO_SOCKS_ERROR;
}

static co_socks_step done_check(co_socks *s)
{
	s->state = S_DONE;
	return CO_SOCKS_DONE;
}

co_socks_step co_socks_input(co_socks *s, const unsigned char *in, size_t len, size_t *used,
                             unsigned char *out, size_t *outlen, const char **why)
{
	*used = 0;
	*outlen = 0;
	*why = NULL;
	switch (s->state) {
	case S_GREETING:
		if (len < 2)
			return CO_SOCKS_MORE;
		*used = 2;
		if (in[0] != VER)
			return fail(s, why, "the proxy does not speak SOCKS5");
		if (in[1] == M_USER && s->proxy->user[0]) {
			*outlen = auth_request(s, out);
			s->state = S_AUTH;
			return CO_SOCKS_SEND;
		}
		if (in[1] == M_NONE) {
			if (!s->target_len) /* a check: the proxy let us in */
				return done_check(s);
			*outlen = connect_request(s, out);
			s->state = S_CONNECT;
			return CO_SOCKS_SEND;
		}
		return fail(s, why,
		            s->proxy->user[0]
		                ? "the proxy accepts neither no authentication nor a password"
		                : "the proxy wants authentication (give USER:PASSWORD@)");
	case S_AUTH:
		if (len < 2)
			return CO_SOCKS_MORE;
		*used = 2;
		if (in[0] != 1)
			return fail(s, why, "the proxy's answer to the password is malformed");
		if (in[1] != 0)
			return fail(s, why, "the proxy refused the username or password");
		if (!s->target_len)
			return done_check(s);
		*outlen = connect_request(s, out);
		s->state = S_CONNECT;
		return CO_SOCKS_SEND;
	case S_CONNECT: {
		size_t need;

		if (len < 5)
			return CO_SOCKS_MORE;
		if (in[0] != VER)
			return fail(s, why, "the proxy's answer to CONNECT is malformed");
		if (in[1] != 0) {
			*used = len < 10 ? len : 10;
			s->rep = in[1];
			return fail(s, why, reply_text(in[1]));
		}
		switch (in[3]) {
		case 1:
			need = 4 + 4 + 2;
			break;
		case 4:
			need = 4 + 16 + 2;
			break;
		case 3:
			need = 4 + 1 + (size_t)in[4] + 2;
			break;
		default:
			return fail(s, why, "the proxy's answer to CONNECT is malformed");
		}
		if (in[2] != 0)
			return fail(s, why, "the proxy's answer to CONNECT is malformed");
		if (len < need)
			return CO_SOCKS_MORE;
		*used = need;
		s->state = S_DONE;
		return CO_SOCKS_DONE;
	}
	case S_DONE:
		return CO_SOCKS_DONE;
	default:
		return fail(s, why, "the proxy handshake already failed");
	}
}
