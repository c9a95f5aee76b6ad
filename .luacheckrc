-- luacheck configuration (make lint). Rule files get exactly the sandbox's globals.
std = "lua54"
max_line_length = 120

files["spec/"] = { std = "+busted" }

-- What lua/saas/sandbox.lua gives a rule file (BASE + LIBS there); nothing else is readable.
files["rules/"] = {
  std = {
    read_globals = {
      "assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal", "rawget", "rawlen",
      "select", "tonumber", "tostring", "type", "xpcall", "_VERSION", "setmetatable",
      "getmetatable",
      string = { fields = { "byte", "char", "find", "format", "gmatch", "gsub", "len", "lower",
        "match", "pack", "packsize", "rep", "reverse", "sub", "unpack", "upper" } },
      table = { fields = { "concat", "insert", "move", "pack", "remove", "sort", "unpack" } },
      math = { fields = { "abs", "ceil", "cos", "deg", "exp", "floor", "fmod", "huge", "log", "max",
        "maxinteger", "min", "mininteger", "modf", "pi", "rad", "random", "sin", "sqrt", "tan",
        "tointeger", "type", "ult" } },
      utf8 = { fields = { "char", "charpattern", "codepoint", "codes", "len", "offset" } },
      coroutine = { fields = { "close", "create", "isyieldable", "resume", "running", "status",
        "wrap", "yield" } },
      os = { fields = { "clock", "date", "difftime", "time" } },
    },
  },
  -- handler arguments a rule does not use are normal (the contract fixes the signature)
  unused_args = false,
}
