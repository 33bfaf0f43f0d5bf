# azcmk - build, test, demo, emulator, bench, install.
# `make demo` and `make test` install missing Debian packages first (scripts/deps.sh).

CC        ?= cc
WARN      := -Wall -Wextra -Werror
CSTD      := -std=gnu99
OPT       ?= -O2 -g
LIBS      := -lcurl -lssl -lcrypto
SRC       := $(wildcard src/*.c)
HDR       := $(wildcard src/*.h)
LUA54_INC := /usr/include/lua5.4
JIT_INC   := /usr/include/luajit-2.1

CORE54    := build/5.4/azcmk/core.so
COREJIT   := build/jit/azcmk/core.so
COREASAN  := build/asan/azcmk/core.so

.PHONY: all deps test demo lint fuzz bench install install-jit clean emulator-start emulator-stop conformance \
  conformance-az

all: $(CORE54) $(COREJIT)

deps:
	@./scripts/deps.sh

# The module never links liblua: the host interpreter supplies the lua_* symbols.
$(CORE54): $(SRC) $(HDR)
	@mkdir -p $(@D)
	$(CC) $(CSTD) $(OPT) $(WARN) -fPIC -shared -I$(LUA54_INC) -o $@ $(SRC) $(LIBS)

$(COREJIT): $(SRC) $(HDR)
	@mkdir -p $(@D)
	$(CC) $(CSTD) $(OPT) $(WARN) -fPIC -shared -I$(JIT_INC) -o $@ $(SRC) $(LIBS)

$(COREASAN): $(SRC) $(HDR)
	@mkdir -p $(@D)
	$(CC) $(CSTD) -O1 -g $(WARN) -fPIC -shared -fsanitize=address,undefined -fno-omit-frame-pointer \
	  -fno-sanitize-recover=undefined -I$(LUA54_INC) -o $@ $(SRC) $(LIBS)

asan: $(COREASAN)

test: deps all asan
	@./scripts/test.sh

lint: deps
	luacheck -q .

fuzz: deps
	@FUZZ_SECONDS=$${FUZZ_SECONDS:-120} ./scripts/fuzz.sh

demo: deps all
	@./scripts/demo.sh

bench: deps all
	@./bench/run.sh

# The local Azure emulator: eval "$(make -s emulator-start)"; PORT=N DIR=D select another one.
emulator-start:
	@./scripts/deps.sh >&2 && $(MAKE) -s all >&2 && ./bin/azcmk emulator start $(if $(PORT),--port $(PORT)) $(if $(DIR),--dir $(DIR))

emulator-stop:
	@./bin/azcmk emulator stop $(if $(PORT),--port $(PORT)) $(if $(DIR),--dir $(DIR))

conformance: deps all
	@./scripts/conformance.sh

# Debian's azure-cli (the article, verbatim), the Python SDK and recorded Azure traffic (conformance/README.md).
conformance-az: deps all
	@./scripts/conformance-az.sh

# Offline LuaRocks installs (see README).
install: deps
	luarocks --lua-version=5.4 make --deps-mode=none azcmk-scm-1.rockspec

install-jit: deps
	luarocks --lua-version=5.1 make --deps-mode=none azcmk-scm-1.rockspec LUA_INCDIR=$(JIT_INC)

clean:
	rm -rf build
