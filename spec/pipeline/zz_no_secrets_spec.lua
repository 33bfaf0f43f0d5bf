-- Runs last (file order): every log line the pipeline specs produced (debug level, all spec
-- files of the run) is free of every secret and token that crossed the wire during the run.
local H = require("support.pipeline_helper")

describe("log redaction over the whole pipeline suite", function()
  it("no secret, token or assertion in any captured log line, nor in the emulator's log", function()
    H.env()
    local lines, secrets = H.recorded()
    H.clear_recorded()
    if #lines > 0 then
      assert.truthy(#secrets > 0, "no secrets were recorded")
    end
    for _, s in ipairs(secrets) do
      for _, l in ipairs(lines) do
        if l:find(s, 1, true) then error("secret leaked into a log line: " .. l:sub(1, 80)) end
      end
    end
    H.E.assert_no_internal_errors()
    local body = H.control("GET", "log").body or ""
    for _, s in ipairs(secrets) do
      assert.falsy(body:find(s, 1, true), "secret in the emulator log")
    end
  end)
end)
