--- emu.acr.blobs: registry content at rest, encrypted with the registry's content key
-- (emu.acr.content_key) by AES-256-GCM, in files under the emulator's directory so that blob
-- bytes never sit in the shared dict (nginx workers share the files; memory stays bounded):
--
--   DIR/acr/<store>/blobs/<sha256 hex>          one file per blob or manifest
--   DIR/acr/<store>/uploads/<uuid>.<n>          the chunks of an upload session
--
-- File format: MAGIC .. iv (12 bytes) .. ciphertext .. tag (16); the additional data is the
-- file's name, so a file copied under another name does not open. Writes go to a temporary
-- name and are renamed into place (a reader never sees half a file).
local M = {}

M.MAGIC = "AZCMK-ACR-BLOB-1\n"
--- The largest blob the emulator takes (an emulator limit; ACR's layers go far beyond it).
M.LIMIT = 32 * 1024 * 1024

local function C() return require("azcmk.core") end

local function root()
  return require("emu.seed").dir .. "/acr"
end

local function dir_of(store, kind)
  assert(type(store) == "string" and store:match("^%x+$"), "blob store id")
  return root() .. "/" .. store .. "/" .. kind
end

local function write_atomic(path, data)
  local tmp = path .. ".tmp." .. ngx.worker.pid() .. "." .. C().hex(C().random_bytes(4))
  local f, err = io.open(tmp, "wb")
  if not f then
    -- first write of a store (or after a reset): make its directory; the path holds hex and fixed names only
    os.execute("mkdir -p '" .. path:match("^(.*)/[^/]+$") .. "'")
    f, err = io.open(tmp, "wb")
  end
  if not f then error("acr blobs: cannot write " .. tmp .. ": " .. tostring(err)) end
  f:write(data)
  f:close()
  local ok, rerr = os.rename(tmp, path)
  if not ok then os.remove(tmp) error("acr blobs: cannot rename " .. tmp .. ": " .. tostring(rerr)) end
end

local function seal(key, name, data)
  local iv = C().random_bytes(12)
  return M.MAGIC .. iv .. C().aes256gcm_seal(key, iv, data, name)
end

--- Plaintext of a sealed file, or nil, "corrupt" (wrong key, changed bytes, other file).
local function open(key, name, raw)
  if raw:sub(1, #M.MAGIC) ~= M.MAGIC then return nil, "corrupt" end
  local iv = raw:sub(#M.MAGIC + 1, #M.MAGIC + 12)
  local out = C().aes256gcm_open(key, iv, raw:sub(#M.MAGIC + 13), name)
  if not out then return nil, "corrupt" end
  return out
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

--- Stores `data` as blob `hex` of the store (ck: emu.acr.content_key.open's result).
function M.put(ck, hex, data)
  write_atomic(dir_of(ck.store, "blobs") .. "/" .. hex, seal(ck.key, "blobs/" .. hex, data))
end

--- The plaintext of blob `hex`, or nil, "missing" | "corrupt".
function M.get(ck, hex)
  local raw = read_file(dir_of(ck.store, "blobs") .. "/" .. hex)
  if not raw then return nil, "missing" end
  return open(ck.key, "blobs/" .. hex, raw)
end

--- The stored (encrypted) bytes of a blob, for specs that prove the content is not in the clear.
function M.raw(store, hex)
  return read_file(dir_of(store, "blobs") .. "/" .. hex)
end

function M.remove(store, hex)
  os.remove(dir_of(store, "blobs") .. "/" .. hex)
end

--- Appends chunk number n (1, 2, ...) of upload `uuid`.
function M.put_chunk(ck, uuid, n, data)
  local name = "uploads/" .. uuid .. "." .. n
  write_atomic(dir_of(ck.store, "uploads") .. "/" .. uuid .. "." .. n, seal(ck.key, name, data))
end

--- The whole upload (chunks 1..n joined), or nil, "missing" | "corrupt".
function M.read_upload(ck, uuid, n)
  local parts = {}
  for i = 1, n do
    local name = "uploads/" .. uuid .. "." .. i
    local raw = read_file(dir_of(ck.store, "uploads") .. "/" .. uuid .. "." .. i)
    if not raw then return nil, "missing" end
    local pt, err = open(ck.key, name, raw)
    if not pt then return nil, err end
    parts[i] = pt
  end
  return table.concat(parts)
end

function M.drop_upload(store, uuid, n)
  for i = 1, n do os.remove(dir_of(store, "uploads") .. "/" .. uuid .. "." .. i) end
end

--- Removes a registry's whole store (registry deleted).
function M.drop_store(store)
  if type(store) == "string" and store:match("^%x+$") then
    os.execute("rm -rf '" .. root() .. "/" .. store .. "'")
  end
end

--- Removes every store (POST /_emulator/reset).
function M.drop_all()
  os.execute("rm -rf '" .. root() .. "'")
end

return M
