-- Helpers for the miltertest(8) scripts of test_milter.py (loaded with
-- dofile).  Settings come from miltertest -D NAME=VALUE, as globals:
--
--   SPEC    the milter's socket, libmilter syntax ("inet:PORT@HOST")
--   CLIENT  the SMTP client's address (default 192.0.2.10: not on the
--           default skip_networks, 127.0.0.0/8)
--
-- A failed expectation raises an error: miltertest prints it and exits
-- non-zero, which fails the pytest test.

REPLY_NAMES = {
	[SMFIR_CONTINUE] = "continue",
	[SMFIR_REJECT] = "reject",
	[SMFIR_TEMPFAIL] = "tempfail",
	[SMFIR_REPLYCODE] = "replycode",
	[SMFIR_ACCEPT] = "accept",
	[SMFIR_DISCARD] = "discard",
}

-- What the test expects, by name: "continue", "replycode" (a reject or a
-- defer with our text: which one is in calloutd's log), ...
local WANT = {
	continue = SMFIR_CONTINUE,
	replycode = SMFIR_REPLYCODE,
	reject = SMFIR_REJECT,
	tempfail = SMFIR_TEMPFAIL,
	accept = SMFIR_ACCEPT,
}

function reply_name(r)
	return REPLY_NAMES[r] or string.format("%q", string.char(r))
end

-- Check the reply to the last command against the name want.
function expect(conn, what, want)
	local got = mt.getreply(conn)
	if got ~= WANT[want] then
		error(string.format("%s: expected %s, got %s", what, want, reply_name(got)))
	end
	mt.echo(string.format("%s: %s", what, want))
end

-- A call that must succeed (miltertest returns nil or an error string).
function must(what, err)
	if err ~= nil then
		error(string.format("%s failed: %s", what, tostring(err)))
	end
end

-- Connect, negotiate, send the client's connection details and HELO.
function open(helo)
	local conn = mt.connect(SPEC, 20, 0.1)
	if conn == nil then
		error("cannot connect to " .. tostring(SPEC))
	end
	must("conninfo", mt.conninfo(conn, "client.example", CLIENT or "192.0.2.10"))
	expect(conn, "connect", "continue")
	must("helo", mt.helo(conn, helo or "client.example"))
	expect(conn, "helo", "continue")
	return conn
end

-- Comma-separated -D values.
function split(s)
	local out = {}
	if s == nil or s == "" then
		return out
	end
	for item in string.gmatch(s, "([^,]+)") do
		table.insert(out, item)
	end
	return out
end

-- The message's header and body, as far as the filter asked for them
-- (calloutd wants neither: libmilter negotiates them away).
function content(conn)
	if not mt.test_option(conn, SMFIP_NOHDRS) then
		must("header", mt.header(conn, "Subject", "milter test"))
	end
	if not mt.test_option(conn, SMFIP_NOEOH) then
		must("eoh", mt.eoh(conn))
	end
	if not mt.test_option(conn, SMFIP_NOBODY) then
		must("body", mt.bodystring(conn, "Hello.\r\n"))
	end
end
