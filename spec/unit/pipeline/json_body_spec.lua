local pipeline = require "azcmk.pipeline"
local cjson = require "cjson"

describe("pipeline.encode_json", function()
  it("writes EMPTY_ARRAY as [] and leaves other values alone", function()
    local s = pipeline.encode_json({ properties = { accessPolicies = pipeline.EMPTY_ARRAY, tags = {} },
      key_ops = { "wrapKey" }, name = "x" })
    local back = cjson.decode(s)
    assert.equal("[]", s:match('"accessPolicies":(%[%])'))
    assert.same({ "wrapKey" }, back.key_ops)
    assert.equal("x", back.name)
  end)

  it("keeps a string that merely mentions the marker's text", function()
    local s = pipeline.encode_json({ note = "azcmk-empty-array" })
    assert.equal("azcmk-empty-array", cjson.decode(s).note)
  end)
end)
