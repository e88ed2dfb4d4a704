-- For test_failsafe.py: one transaction (SENDER, one RCPT) that takes
-- whatever calloutd answers and prints it, one line per step:
--   "connect continue", "MAIL continue", "RCPT tempfail", ...
-- It stops at the first answer that is not continue.
dofile(DIR .. "/common.lua")

local conn = mt.connect(SPEC, 20, 0.1)
if conn == nil then
	error("cannot connect to " .. tostring(SPEC))
end

local function step(what, err)
	must(what, err)
	local r = reply_name(mt.getreply(conn))
	mt.echo(what .. " " .. r)
	return r == "continue"
end

local _ = step("connect", mt.conninfo(conn, "client.example", CLIENT))
	and step("HELO", mt.helo(conn, "client.example"))
	and step("MAIL", mt.mailfrom(conn, SENDER))
	and step("RCPT", mt.rcptto(conn, "<someone@example.net>"))
mt.disconnect(conn)
