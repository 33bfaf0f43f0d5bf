--- The JMESPath parser: tokens -> an abstract syntax tree, by top-down operator precedence
-- (Pratt), with the binding powers of the specification's reference implementations.
-- Each token type may have a `nud` (it starts an expression) and a `led` (it continues the
-- expression on its left). Nodes are tables { type = ..., ... }; see azcmk.jmespath.interpreter.
-- Function names and argument counts are checked here, so a bad call fails before any data
-- is read.
local lexer = require("azcmk.jmespath.lexer")
local functions = require("azcmk.jmespath.functions")
local jerr = require("azcmk.jmespath.errors")

local M = {}

local BP = {
  eof = 0, unquoted_identifier = 0, quoted_identifier = 0, literal = 0, rbracket = 0,
  rparen = 0, comma = 0, rbrace = 0, number = 0, current = 0, expref = 0, colon = 0,
  pipe = 1, ["or"] = 2, ["and"] = 3,
  eq = 5, gt = 5, lt = 5, gte = 5, lte = 5, ne = 5,
  flatten = 9, star = 20, filter = 21, dot = 40, ["not"] = 45, lbrace = 50, lbracket = 55, lparen = 60,
}
-- Tokens binding less than this end a projection's right-hand side.
local PROJECTION_STOP = 10

local IDENTITY = { type = "identity" }

-- How a token type is named in messages when it is expected.
local EXPECTED = { rbracket = "']'", rparen = "')'", rbrace = "'}'", colon = "':'", comma = "','",
  star = "'*'" }

-- The parser state for one expression: tokens and the index of the current one.
local P = {}
P.__index = P

function P:peek(k) return self.tokens[self.i + (k or 0)].type end
function P:token() return self.tokens[self.i] end
function P:advance() self.i = self.i + 1 end

function P:fail(tok, what)
  local found
  if tok.type == "eof" then found = "the end of the expression"
  elseif tok.type == "literal" then found = "a literal"
  else found = "'" .. tostring(tok.value) .. "'" end
  if what then jerr.syntax(self.expr, tok.pos, what .. ", found " .. found) end
  if tok.type == "eof" then jerr.syntax(self.expr, tok.pos, "the expression ends too early") end
  jerr.syntax(self.expr, tok.pos, "unexpected " .. found)
end

function P:match(t)
  if self:peek() ~= t then self:fail(self:token(), "expected " .. (EXPECTED[t] or t)) end
  self:advance()
end

local nud, led = {}, {}

function P:expression(rbp)
  local tok = self:token()
  self:advance()
  local f = nud[tok.type]
  if not f then self:fail(tok) end
  local left = f(self, tok)
  local t = self:peek()
  while rbp < BP[t] do
    local g = led[t]
    if not g then self:fail(self:token()) end
    self:advance()
    left = g(self, left)
    t = self:peek()
  end
  return left
end

-- What follows a projection: nothing (identity), [..], [?..] or .rhs.
function P:projection_rhs(rbp)
  local t = self:peek()
  if BP[t] < PROJECTION_STOP then return IDENTITY end
  if t == "lbracket" or t == "filter" then return self:expression(rbp) end
  if t == "dot" then
    self:advance()
    return self:dot_rhs(rbp)
  end
  self:fail(self:token())
end

-- What may follow a dot: an identifier, *, a multi-select list or hash.
function P:dot_rhs(rbp)
  local t = self:peek()
  if t == "quoted_identifier" or t == "unquoted_identifier" or t == "star" then
    return self:expression(rbp)
  elseif t == "lbracket" then
    self:advance()
    return self:multi_select_list()
  elseif t == "lbrace" then
    self:advance()
    return self:multi_select_hash()
  end
  self:fail(self:token(), "expected an identifier, '*', '[' or '{' after '.'")
end

function P:multi_select_list()
  local children = {}
  while true do
    children[#children + 1] = self:expression(0)
    if self:peek() == "rbracket" then break end
    self:match("comma")
  end
  self:advance()
  return { type = "multi_select_list", children = children }
end

function P:multi_select_hash()
  local keys, children = {}, {}
  while true do
    local tok = self:token()
    if tok.type ~= "quoted_identifier" and tok.type ~= "unquoted_identifier" then
      self:fail(tok, "expected a key")
    end
    self:advance()
    self:match("colon")
    keys[#keys + 1] = tok.value
    children[#children + 1] = self:expression(0)
    if self:peek() == "rbrace" then break end
    self:match("comma")
  end
  self:advance()
  return { type = "multi_select_hash", keys = keys, children = children }
end

-- [n] or [start:stop:step], after the '['.
function P:index_expression()
  if self:peek() == "colon" or self:peek(1) == "colon" then
    local parts, n = {}, 1
    while self:peek() ~= "rbracket" do
      local t = self:peek()
      if t == "colon" then
        n = n + 1
        if n > 3 then self:fail(self:token(), "a slice has at most two ':'") end
      elseif t == "number" then
        parts[n] = self:token().value
      else
        self:fail(self:token(), "expected a number or ':' in a slice")
      end
      self:advance()
    end
    self:advance()
    return { type = "slice", start = parts[1], stop = parts[2], step = parts[3] }
  end
  local tok = self:token()
  self:advance()
  self:match("rbracket")
  return { type = "index", index = tok.value }
end

-- left[index] is a plain index expression; left[slice] projects what follows onto the slice.
function P:project_if_slice(left, right)
  local node = { type = "index_expression", children = { left, right } }
  if right.type == "slice" then
    return { type = "projection", left = node, right = self:projection_rhs(BP.star) }
  end
  return node
end

-- ------------------------------------------------------------------ nud: tokens that start

nud.literal = function(_, tok) return { type = "literal", value = tok.value } end
nud.unquoted_identifier = function(_, tok) return { type = "field", name = tok.value } end
nud.quoted_identifier = function(self, tok)
  if self:peek() == "lparen" then self:fail(self:token(), "a function name cannot be quoted") end
  return { type = "field", name = tok.value }
end
nud.current = function() return { type = "current" } end
nud.star = function(self)
  local right = self:peek() == "rbracket" and IDENTITY or self:projection_rhs(BP.star)
  return { type = "value_projection", left = IDENTITY, right = right }
end
nud.filter = function(self) return led.filter(self, IDENTITY) end
nud.lbrace = function(self) return self:multi_select_hash() end
nud.lparen = function(self)
  local e = self:expression(0)
  self:match("rparen")
  return e
end
nud.flatten = function(self)
  return { type = "projection", left = { type = "flatten", child = IDENTITY },
    right = self:projection_rhs(BP.flatten) }
end
nud["not"] = function(self) return { type = "not", child = self:expression(BP["not"]) } end
nud.expref = function(self) return { type = "expref", child = self:expression(BP.expref) } end
nud.lbracket = function(self)
  local t = self:peek()
  if t == "number" or t == "colon" then
    return self:project_if_slice(IDENTITY, self:index_expression())
  elseif t == "star" and self:peek(1) == "rbracket" then
    self:advance()
    self:advance()
    return { type = "projection", left = IDENTITY, right = self:projection_rhs(BP.star) }
  end
  return self:multi_select_list()
end

-- ------------------------------------------------------------------ led: tokens that continue

led.dot = function(self, left)
  if self:peek() == "star" then
    self:advance()
    return { type = "value_projection", left = left, right = self:projection_rhs(BP.dot) }
  end
  local right = self:dot_rhs(BP.dot)
  if left.type == "subexpression" then
    left.children[#left.children + 1] = right
    return left
  end
  return { type = "subexpression", children = { left, right } }
end
led.pipe = function(self, left)
  return { type = "pipe", left = left, right = self:expression(BP.pipe) }
end
led["or"] = function(self, left)
  return { type = "or", left = left, right = self:expression(BP["or"]) }
end
led["and"] = function(self, left)
  return { type = "and", left = left, right = self:expression(BP["and"]) }
end
led.lparen = function(self, left)
  local name_tok = self.tokens[self.i - 2]
  if left.type ~= "field" then self:fail(name_tok, "only a name can be called") end
  local args = {}
  while self:peek() ~= "rparen" do
    args[#args + 1] = self:expression(0)
    if self:peek() ~= "rparen" then self:match("comma") end
  end
  self:advance()
  local fn = functions.lookup(left.name, #args)   -- raises unknown-function / invalid-arity
  return { type = "function", name = left.name, args = args, fn = fn }
end
led.filter = function(self, left)
  local condition = self:expression(0)
  self:match("rbracket")
  local right = self:peek() == "flatten" and IDENTITY or self:projection_rhs(BP.filter)
  return { type = "filter_projection", left = left, right = right, condition = condition }
end
for _, op in ipairs({ "eq", "ne", "lt", "lte", "gt", "gte" }) do
  led[op] = function(self, left)
    return { type = "comparator", op = op, left = left, right = self:expression(BP[op]) }
  end
end
led.flatten = function(self, left)
  return { type = "projection", left = { type = "flatten", child = left },
    right = self:projection_rhs(BP.flatten) }
end
led.lbracket = function(self, left)
  local t = self:peek()
  if t == "number" or t == "colon" then
    local right = self:index_expression()
    if left.type == "index_expression" then
      left.children[#left.children + 1] = right
      return left
    end
    return self:project_if_slice(left, right)
  end
  self:match("star")
  self:match("rbracket")
  return { type = "projection", left = left, right = self:projection_rhs(BP.star) }
end

--- Parses expr into its tree; raises azcmk.jmespath.errors on a bad expression.
function M.parse(expr)
  local self = setmetatable({ expr = expr, tokens = lexer.tokenize(expr), i = 1 }, P)
  local tree = self:expression(0)
  if self:peek() ~= "eof" then self:fail(self:token()) end
  return tree
end

return M
