-- The MTA gives up while calloutd is still verifying: it stops waiting
-- for the reply to RCPT and drops the connection without a QUIT (as an
-- MTA does when its milter_command_timeout passes or its client hangs
-- up).  calloutd must finish the check on its own, free what the
-- connection held, and go on serving.
--
--   SENDER, RCPT   the transaction
--   WAIT           seconds to wait for the RCPT reply (less than the check)
dofile(DIR .. "/common.lua")

local conn = open()
must("mailfrom", mt.mailfrom(conn, SENDER))
expect(conn, "MAIL", "continue")
mt.set_timeout(tonumber(WAIT or "1"))
local ok, err = pcall(mt.rcptto, conn, RCPT)
if ok and err == nil then
	error("RCPT was answered within " .. (WAIT or "1") .. " s: the check was not slow enough")
end
mt.echo("RCPT: no answer in time: " .. tostring(err))
mt.disconnect(conn, false)
