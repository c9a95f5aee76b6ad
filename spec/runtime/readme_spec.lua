-- Every Lua code block in README.md is exercised, so the documentation cannot drift from the
-- runtime: a rule block must load in the real sandbox (and its spec blocks run against it),
-- a spec block runs here as a spec, any other block (configuration) must at least compile.
local h = require("helpers")

local function lua_blocks(path)
  local f = assert(io.open(path, "r"))
  local text = f:read("a")
  f:close()
  local blocks, pos = {}, 1
  while true do
    local s, e, body = text:find("\n```lua\n(.-)\n```", pos)
    if not s then break end
    local _, nl = text:sub(1, s):gsub("\n", "")
    blocks[#blocks + 1] = { body = body .. "\n", line = nl + 2 }
    pos = e
  end
  return blocks
end

-- What kind each block is: the first pattern that matches decides.
local KINDS = {
  { kind = "spec", pattern = "describe%(" },
  { kind = "rule", pattern = "function rule%." },
  { kind = "config", pattern = "" },
}

local function kind_of(body)
  for _, k in ipairs(KINDS) do
    if body:find(k.pattern) then return k.kind end
  end
end

local blocks = lua_blocks("README.md")
local counts = { spec = 0, rule = 0, config = 0 }

describe("README.md code blocks", function()
  it("has Lua blocks to check (rules, specs and configuration)", function()
    assert.is_true(#blocks >= 3)
  end)

  for _, b in ipairs(blocks) do
    local kind = kind_of(b.body)
    counts[kind] = counts[kind] + 1
    local name = string.format("README.md:%d", b.line)
    if kind == "rule" then
      it(name .. ": the rule example loads in the real sandbox", function()
        local path, dir = h.rule_file(b.body)
        local ok, problems = h.check_rule(path)
        h.remove_dir(dir)
        assert.is_true(ok, table.concat(problems, "\n"))
      end)
    elseif kind == "config" then
      it(name .. ": the configuration example is valid Lua", function()
        local fn, err = load(b.body, "=" .. name, "t", {})
        assert.is_truthy(fn, err)
      end)
    else
      -- Runs the block as if it were a spec file of its own: its describe/it register here.
      local fn, err = load(b.body, "@" .. name, "t", _ENV)
      if not fn then
        it(name .. ": the spec example compiles", function() error(err) end)
      else
        describe(name, fn)
      end
    end
  end

  it("has at least one rule and one spec block", function()
    assert.is_true(counts.rule >= 1 and counts.spec >= 1)
  end)
end)
