-- Core Lua must run on Lua 5.4 and LuaJIT: stick to what both have.
std = "min"
max_line_length = 110
codes = true
exclude_files = { "build/**", "bench/node_modules/**", "conformance/node_modules/**", "lua_modules/**" }

files["spec/**"] = { std = "+busted" }
files["spec/emulator/**"] = { std = "+busted", max_line_length = 120 } -- Azure message texts
-- OpenResty-only code: the emulator (nginx + Lua) and the ngx face.
files["emulator/**"] = { std = "min+ngx_lua", max_line_length = 120 } -- Azure message texts
files["lua/azcmk/ngx/**"] = { std = "min+ngx_lua" }
files["lua/azcmk/transport/ngx.lua"] = { std = "min+ngx_lua" }
files["examples/nginx/**"] = { std = "min+ngx_lua" }
