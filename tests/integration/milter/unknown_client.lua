-- A client the MTA cannot give an address for (family "unknown", as
-- Postfix sends for a non-IP client): calloutd verifies with an empty
-- client address.
--
--   SENDER, RCPT, WANT_RCPT
dofile(DIR .. "/common.lua")

local conn = mt.connect(SPEC, 20, 0.1)
if conn == nil then
	error("cannot connect to " .. tostring(SPEC))
end
must("conninfo", mt.conninfo(conn, "unknown", "unspec"))
expect(conn, "connect", "continue")
must("mailfrom", mt.mailfrom(conn, SENDER))
expect(conn, "MAIL", "continue")
must("rcptto", mt.rcptto(conn, RCPT))
expect(conn, "RCPT", WANT_RCPT)
mt.disconnect(conn)
