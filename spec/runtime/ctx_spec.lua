-- ctx helpers every rule gets, and the fakes saas.testing puts behind ctx.
local h = require("helpers")
local ctxmod = require("saas.ctx")

describe("ctx.parse_time", function()
  local cases = {
    { "1970-01-01T00:00:00Z", 0 },
    { "2024-05-02T09:15:27.1234567Z", 1714641327 },
    { "2024-02-29", 1709164800 },
    { "2024-05-02T11:15:27+02:00", 1714641327 },
    { "0001-01-01T00:00:00", -62135596800 },
  }
  for _, c in ipairs(cases) do
    it("reads " .. c[1], function()
      assert.are.equal(c[2], ctxmod.parse_time(c[1]))
    end)
  end
  it("answers nil, err for text that is not a date", function()
    local v, err = ctxmod.parse_time("yesterday")
    assert.is_nil(v)
    assert.matches("ISO 8601", err)
  end)
end)

describe("the fake ctx", function()
  it("is read-only like the daemon's", function()
    local ctx = h.ctx()
    assert.has_error(function() ctx.store = nil end)
    assert.has_error(function() ctx.http.get = nil end)
  end)

  it("stores values as strings, as LMDB does", function()
    local ctx, fake = h.ctx()
    ctx.store.put("n", 3)
    assert.are.equal("3", ctx.store.get("n"))
    assert.are.equal("3", fake.store.n)
    ctx.store.delete("n")
    assert.is_nil(ctx.store.get("n"))
  end)

  it("records HTTP calls and answers from canned routes", function()
    local ctx, fake = h.ctx({ http = { ["GET https://isv.example/ping"] = { status = 204 } },
      http_allow = { "isv.example" } })
    local resp = ctx.http.get("https://isv.example/ping")
    assert.are.equal(204, resp.status)
    local none, err = ctx.http.get("https://evil.example/")
    assert.is_nil(none)
    assert.matches("host not allowed", err)
    assert.are.equal(2, #fake.http.calls)
  end)

  it("has the real C crypto", function()
    local ctx = h.ctx()
    assert.are.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", ctx.crypto.sha256(""))
    assert.are.equal("f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8",
      ctx.crypto.hmac("key", "The quick brown fox jumps over the lazy dog"))
    assert.are.equal("aGVsbG8=", ctx.crypto.base64_encode("hello"))
    assert.are.equal("hello", ctx.crypto.base64_decode("aGVsbG8"))
    assert.matches("^%x+%-%x+%-4%x+%-%x+%-%x+$", ctx.crypto.uuid())
  end)

  it("encodes read-only tables to JSON", function()
    local ctx = h.ctx()
    local frozen = require("saas.sandbox").freeze({ a = { b = 1 } })
    assert.are.equal('{"a":{"b":1}}', ctx.json.encode(frozen))
    local v, err = ctx.json.decode("{oops")
    assert.is_nil(v)
    assert.is_string(err)
  end)
end)
