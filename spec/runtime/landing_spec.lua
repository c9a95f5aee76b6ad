-- The landing page's part of the rule contract: provision's third argument (the signed-in
-- buyer and the answered fields), the `landing` table (fields, brand) checked at load, and the
-- redirect filter.
local h = require("helpers")
local contract = require("saas.contract")

local function check(text)
  local path, dir = h.rule_file(text)
  local ok, problems = h.check_rule(path)
  h.remove_dir(dir)
  return ok, problems or {}
end

describe("provision on the landing page", function()
  it("receives the signed-in buyer and the answered fields as its third argument", function()
    local path, dir = h.rule_file([[
return { provision = function(sub, ctx, landing)
  if landing.buyer.tenant_matches then return { action = "activate" } end
  return { action = "reject", message = landing.buyer.email .. " of " .. landing.fields.company }
end }]])
    local rule = h.load_rule(path)
    h.remove_dir(dir)
    local sub = h.subscription()
    assert.activated(h.call(rule, "provision", sub, h.ctx(), h.landing(sub, { fields = { company = "Contoso" } })))
    local other = h.landing(sub, { buyer = { email = "eve@other.example", tenant_matches = false },
      fields = { company = "Other Ltd" } })
    assert.refused(h.call(rule, "provision", sub, other, h.ctx()), "eve@other.example of Other Ltd")
  end)

  it("gets the landing argument read-only", function()
    local path, dir = h.rule_file([[
return { provision = function(sub, ctx, landing) landing.fields.company = "x" return { action = "activate" } end }]])
    local rule = h.load_rule(path)
    h.remove_dir(dir)
    local sub = h.subscription()
    assert.rule_failed(h.call(rule, "provision", sub, h.landing(sub), h.ctx()), "error", "read%-only")
  end)
end)

describe("the landing table", function()
  it("is accepted with fields and a brand, and given to the daemon as JSON", function()
    local ok, problems = check([[
return {
  landing = {
    fields = { { name = "company", label = "Company", required = true, max = 80, pattern = "[A-Z].*",
                 help = "legal name" },
               { name = "contact", label = "Contact e-mail", type = "email" } },
    brand = { product = "Contoso", logo_url = "https://contoso.example/l.png", color = "#0b5cad",
              accent = "#fff", support = "help@contoso.example" },
  },
}]])
    assert.is_true(ok, table.concat(problems, "\n"))
    local cjson = require("cjson")
    local json = contract.landing_json({ landing = { fields = { { name = "a", label = "A" } } } })
    assert.are.equal("a", cjson.decode(json).fields[1].name)
    assert.is_nil(contract.landing_json({ provision = function() end }))
  end)

  local bad = {
    { "landing = 5", "landing must be a table" },
    { "landing = { colour = {} }", "landing.colour: unknown key" },
    { "landing = { fields = { { label = 'No name' } } }", "fields[1].name must be an identifier" },
    { "landing = { fields = { { name = 'a b', label = 'x' } } }", "fields[1].name must be an identifier" },
    { "landing = { fields = { { name = 'csrf', label = 'x' } } }", "used twice or reserved" },
    { "landing = { fields = { { name = 'a', label = 'A' }, { name = 'a', label = 'B' } } }", "used twice" },
    { "landing = { fields = { { name = 'a' } } }", "fields[1].label is required" },
    { "landing = { fields = { { name = 'a', label = 'A', type = 'password' } } }", "fields[1].type must be" },
    { "landing = { fields = { { name = 'a', label = 'A', max = 0 } } }", "fields[1].max must be" },
    { "landing = { fields = { { name = 'a', label = 'A', requierd = true } } }", "fields[1].requierd: unknown key" },
    { "landing = { brand = { color = 'red' } }", "brand.color must be a #rgb" },
    { "landing = { brand = { logo_url = 'http://plain.example/l.png' } }", "brand.logo_url must be an https URL" },
    { "landing = { brand = { font = 'x' } }", "brand.font: unknown key" },
  }
  for _, c in ipairs(bad) do
    it("refuses " .. c[1] .. " at load, naming the file and the problem", function()
      local ok, problems = check("return { " .. c[1] .. " }\n")
      assert.is_false(ok)
      assert.matches("rule.lua:%d+: ", problems[1])
      assert.matches(c[2], problems[1], 1, true)
    end)
  end
end)

describe("a provision redirect", function()
  local cases = {
    { "https://app.contoso.example/welcome?a=1&b=2", true },
    { "http://localhost:3000/x", true },
    { "/app/start", true },
    { "/\\evil.example", false },
    { "//evil.example", false },
    { "/%5Cevil.example", false },
    { "/%5cevil.example", false },
    { "/%2F/evil.example", false },
    { "https://evil.example\\@app.contoso.example", false },
    { "/ok\r\nSet-Cookie: x=1", false },
    { "/ok\tthere", false },
    { "javascript:alert(1)", false },
    { "app/relative", false },
  }
  for _, c in ipairs(cases) do
    it(string.format("%q is %s", c[1], c[2] and "allowed" or "refused"), function()
      assert.are.equal(c[2], contract.redirect_ok(c[1]))
      local path, dir = h.rule_file(string.format(
        "return { provision = function() return { action = 'activate', redirect = %q } end }", c[1]))
      local rule = h.load_rule(path)
      h.remove_dir(dir)
      local res = h.call(rule, "provision", h.subscription(), nil, h.ctx())
      assert.are.equal(c[2] and "ok" or "invalid_result", res.outcome)
    end)
  end
end)
