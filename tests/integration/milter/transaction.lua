-- One transaction on one connection, every step checked.
--
--   SENDER       envelope sender as sent ("<a@b>", "<>")
--   RCPTS        recipients, comma separated ("<x@y>,<z@w>")
--   AUTH         {auth_authen} at MAIL (an authenticated client), optional
--   QID          queue id macro {i} at MAIL, optional
--   WANT_MAIL    expected reply to MAIL (default continue)
--   WANT_RCPTS   expected replies to each RCPT, comma separated
--                (default continue for all)
--   DATA         "yes": go on to DATA and end of message when MAIL and
--                some RCPT passed
--   WANT_DATA    expected reply to DATA (default continue)
--   HEADERS      X-Callout values expected at end of message (a Lua
--                pattern each, "|"-separated); "none": no X-Callout
dofile(DIR .. "/common.lua")

local conn = open()
local macros = {}
if QID then
	table.insert(macros, "i")
	table.insert(macros, QID)
end
if AUTH then
	table.insert(macros, "{auth_authen}")
	table.insert(macros, AUTH)
	table.insert(macros, "{auth_type}")
	table.insert(macros, "PLAIN")
end
if #macros > 0 then
	mt.macro(conn, SMFIC_MAIL, table.unpack(macros))
end
must("mailfrom", mt.mailfrom(conn, SENDER))
expect(conn, "MAIL", WANT_MAIL or "continue")
if (WANT_MAIL or "continue") ~= "continue" then
	mt.disconnect(conn)
	return
end

local wants = split(WANT_RCPTS)
local accepted = 0
for i, rcpt in ipairs(split(RCPTS)) do
	must("rcptto", mt.rcptto(conn, rcpt))
	local want = wants[i] or "continue"
	expect(conn, "RCPT " .. rcpt, want)
	if want == "continue" then
		accepted = accepted + 1
	end
end

if DATA == "yes" and accepted > 0 then
	must("data", mt.data(conn))
	expect(conn, "DATA", WANT_DATA or "continue")
	if (WANT_DATA or "continue") == "continue" then
		content(conn)
		must("eom", mt.eom(conn))
		expect(conn, "EOM", "continue")
		if HEADERS == "none" then
			if mt.eom_check(conn, MT_HDRADD, "X-Callout") then
				error("EOM: an X-Callout header was added")
			end
		elseif HEADERS then
			local n = 0
			for pat in string.gmatch(HEADERS, "([^|]+)") do
				local v = mt.getheader(conn, "X-Callout", n)
				if v == nil then
					error(string.format("EOM: no X-Callout header #%d (want %s)", n, pat))
				end
				if not string.find(v, pat) then
					error(string.format("EOM: X-Callout #%d is %q, want %s", n, v, pat))
				end
				mt.echo("X-Callout: " .. v)
				n = n + 1
			end
			if mt.getheader(conn, "X-Callout", n) ~= nil then
				error(string.format("EOM: more than %d X-Callout headers", n))
			end
		end
	end
end
mt.disconnect(conn)
