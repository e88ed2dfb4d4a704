-- Two transactions on one connection, the first one abandoned with RSET
-- after its RCPT (mt.abort): nothing of the first may leak into the second
-- (the sender, "sender already passed", tag mode headers).
--
--   SENDER1, WANT_RCPT1   the first transaction and its RCPT reply
--   SENDER2, WANT_RCPT2   the second, taken to end of message
--   RCPT                  the recipient of both
--   HEADERS2              X-Callout pattern expected at the second EOM,
--                         or "none"
dofile(DIR .. "/common.lua")

local conn = open()
must("mailfrom 1", mt.mailfrom(conn, SENDER1))
expect(conn, "MAIL 1", "continue")
must("rcptto 1", mt.rcptto(conn, RCPT))
expect(conn, "RCPT 1", WANT_RCPT1)
must("abort", mt.abort(conn))

must("mailfrom 2", mt.mailfrom(conn, SENDER2))
expect(conn, "MAIL 2", "continue")
must("rcptto 2", mt.rcptto(conn, RCPT))
expect(conn, "RCPT 2", WANT_RCPT2)
must("data", mt.data(conn))
expect(conn, "DATA", "continue")
content(conn)
must("eom", mt.eom(conn))
expect(conn, "EOM", "continue")
local v = mt.getheader(conn, "X-Callout", 0)
if HEADERS2 == "none" then
	if v ~= nil then
		error("EOM 2: unexpected X-Callout: " .. v)
	end
else
	if v == nil or not string.find(v, HEADERS2) then
		error(string.format("EOM 2: X-Callout is %s, want %s", tostring(v), HEADERS2))
	end
	if mt.getheader(conn, "X-Callout", 1) ~= nil then
		error("EOM 2: a second X-Callout header (leaked from the first transaction?)")
	end
	mt.echo("X-Callout: " .. v)
end
mt.disconnect(conn)
