-- Front door for specs: the rule testing helpers plus small file utilities.
local testing = require("saas.testing")

local helpers = setmetatable({}, { __index = testing })

-- Write name -> text into a fresh temporary directory; returns its path.
function helpers.rules_dir(files)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir))
  for name, text in pairs(files) do
    local f = assert(io.open(dir .. "/" .. name, "w"))
    f:write(text)
    f:close()
  end
  return dir
end

function helpers.rule_file(text)
  local dir = helpers.rules_dir({ ["rule.lua"] = text })
  return dir .. "/rule.lua", dir
end

function helpers.remove_dir(dir)
  os.execute("rm -rf " .. dir)
end

helpers.build = os.getenv("BUILD") or "build"

return helpers
