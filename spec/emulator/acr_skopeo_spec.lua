-- A real registry client against the emulator: Debian's skopeo pushes an image built here (an OCI
-- layout with a gzipped tar layer of a few files) to a CMK registry on its real name
-- ({name}.azurecr.io, TLS verified against the emulator's CA, reached through a CONNECT proxy as
-- HTTPS_PROXY), with ACR's token flow (Entra ID token -> /oauth2/exchange -> refresh token as the
-- password of the token user). It pulls the image back identical, fails while the registry
-- identity's key access is revoked, and works again after restore and after a key rotation.
local E = require("support.emulator")
local W = require("support.cmk_world")
local sys = require("support.sys")
local core = require("azcmk.core")
local cjson = require("cjson")

local TOKEN_USER = "00000000-0000-0000-0000-000000000000"

local function sha(s) return core.hex(core.sha256(s)) end

local function run(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
  local out = p:read("*a")
  p:close()
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  return rc, out
end

describe("emulator: skopeo pushes and pulls through ACR's token flow", function()
  local tmp, proxy_pid, proxy_port, proxy_log, certs, sub

  setup(function()
    sub = W.fresh().subscription_id
    E.control("POST", "keyvault", { delete_seconds = 0 })
    assert(sys.sh("command -v skopeo >/dev/null"), "skopeo is missing: scripts/deps.sh installs it")
    tmp = os.tmpname()
    os.remove(tmp)
    assert(sys.sh("mkdir -p " .. sys.q(tmp .. "/certs") .. " " .. sys.q(tmp .. "/src/etc")))
    certs = tmp .. "/certs"
    sys.write(certs .. "/ca.crt", sys.read(E.ensure().AZCMK_CA_FILE))
    -- until `azcmk emulator start` has its own proxy: the spec's CONNECT proxy tunnels to the emulator
    proxy_port, proxy_log = E.free_port(), tmp .. "/proxy.log"
    local p = io.popen("python3 spec/support/connect_proxy.py " .. proxy_port .. " " .. E.ensure().port .. " " ..
      sys.q(proxy_log) .. " >/dev/null 2>&1 & echo $!")
    proxy_pid = p:read("*l")
    p:close()
    for _ = 1, 50 do
      if not sys.port_free(proxy_port) then break end
      os.execute("sleep 0.1")
    end
  end)

  teardown(function()
    if proxy_pid and proxy_pid:match("^%d+$") then os.execute("kill " .. proxy_pid .. " 2>/dev/null") end
    if tmp then os.execute("rm -rf " .. sys.q(tmp)) end
    E.assert_no_internal_errors()
    E.reset()
  end)

  --- Writes blob `data` into an OCI layout; returns its descriptor fields.
  local function put_blob(layout, data)
    local hex = sha(data)
    sys.write(layout .. "/blobs/sha256/" .. hex, data)
    return "sha256:" .. hex, #data
  end

  --- An OCI layout holding one image tagged `tag`: a tar layer of a few files made here.
  local function build_image(layout, tag)
    assert(sys.sh("mkdir -p " .. sys.q(layout .. "/blobs/sha256")))
    sys.write(tmp .. "/src/etc/motd", "encrypted with the customer's key\n")
    sys.write(tmp .. "/src/hello.txt", "hello from " .. tag .. " " .. core.hex(core.random_bytes(8)) .. "\n")
    -- gzip-compressed, as registries hold layers (skopeo would compress a plain tar itself, changing digests)
    assert(sys.sh("tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C " .. sys.q(tmp .. "/src") ..
      " -cf " .. sys.q(tmp .. "/layer.tar") .. " . && gzip -n -f " .. sys.q(tmp .. "/layer.tar")))
    local layer = sys.read(tmp .. "/layer.tar.gz")
    assert(sys.sh("gzip -n -f -d " .. sys.q(tmp .. "/layer.tar.gz")))
    local diff_id = "sha256:" .. sha(sys.read(tmp .. "/layer.tar"))
    local ld, lsize = put_blob(layout, layer)
    local config = cjson.encode({ architecture = "amd64", os = "linux", config = {},
      rootfs = { type = "layers", diff_ids = { diff_id } } })
    local cd, csize = put_blob(layout, config)
    local manifest = cjson.encode({ schemaVersion = 2, mediaType = "application/vnd.oci.image.manifest.v1+json",
      config = { mediaType = "application/vnd.oci.image.config.v1+json", digest = cd, size = csize },
      layers = { { mediaType = "application/vnd.oci.image.layer.v1.tar+gzip", digest = ld, size = lsize } } })
    local md, msize = put_blob(layout, manifest)
    sys.write(layout .. "/oci-layout", '{"imageLayoutVersion":"1.0.0"}')
    sys.write(layout .. "/index.json", cjson.encode({ schemaVersion = 2, manifests = { {
      mediaType = "application/vnd.oci.image.manifest.v1+json", digest = md, size = msize,
      annotations = { ["org.opencontainers.image.ref.name"] = tag } } } }))
    return { manifest = md, layer = ld, layer_bytes = layer }
  end

  --- An ACR refresh token for the owner principal (what `az acr login` hands to docker).
  local function refresh_token(reg)
    local host = reg:lower() .. ".azurecr.io"
    local r = assert(E.request({ method = "POST", url = "https://" .. host .. "/oauth2/exchange",
      form = { grant_type = "access_token", service = host, access_token = E.token() } }))
    assert.equal(200, r.status, r.body)
    return r.json.refresh_token
  end

  local function skopeo(args)
    return run("env -u http_proxy -u https_proxy -u no_proxy -u NO_PROXY HOME=" .. sys.q(tmp) ..
      " HTTPS_PROXY=http://127.0.0.1:" .. proxy_port .. " skopeo --insecure-policy " .. args)
  end

  local function push(reg, layout, tag, refresh)
    return skopeo("copy --retry-times 0 --dest-cert-dir " .. sys.q(certs) .. " --dest-creds " ..
      sys.q(TOKEN_USER .. ":" .. refresh) .. " oci:" .. sys.q(layout .. ":" .. tag) .. " docker://" ..
      reg:lower() .. ".azurecr.io/hello:" .. tag)
  end

  local function pull(reg, tag, out, refresh)
    os.execute("rm -rf " .. sys.q(out))
    return skopeo("copy --retry-times 0 --src-cert-dir " .. sys.q(certs) .. " --src-creds " ..
      sys.q(TOKEN_USER .. ":" .. refresh) .. " docker://" .. reg:lower() .. ".azurecr.io/hello:" .. tag ..
      " oci:" .. sys.q(out .. ":" .. tag))
  end

  --- The manifest digest and layer bytes of a pulled layout.
  local function pulled(out)
    local text = sys.read(out .. "/index.json")
    assert.is_string(text, out .. "/index.json")
    local md = cjson.decode(text).manifests[1].digest
    local m = cjson.decode((sys.read(out .. "/blobs/sha256/" .. md:sub(8))))
    return md, sys.read(out .. "/blobs/sha256/" .. m.layers[1].digest:sub(8))
  end

  it("round-trips an image, fails while the key is revoked, recovers after restore and rotation", function()
    local w = W.world()
    local refresh = refresh_token(w.reg)
    local img = build_image(tmp .. "/layout", "v1")
    local rc, out = push(w.reg, tmp .. "/layout", "v1", refresh)
    assert.equal(0, rc, out)
    -- it went through the proxy on the registry's real name
    assert.matches("CONNECT " .. w.reg:lower() .. ".azurecr.io:443", sys.read(proxy_log) or "", 1, true)
    rc, out = pull(w.reg, "v1", tmp .. "/pulled", refresh)
    assert.equal(0, rc, out)
    local md, layer = pulled(tmp .. "/pulled")
    assert.equal(img.manifest, md)
    assert.equal(img.layer_bytes, layer)

    -- revoke the identity's access: the pull fails with the registry's denial
    local principal = w.uai.properties.principalId
    W.policy(sub, w.rg, w.vault, "remove", principal)
    rc, out = pull(w.reg, "v1", tmp .. "/denied", refresh)
    assert.is_not.equal(0, rc)
    assert.matches("403 (Forbidden)", out, 1, true) -- skopeo meets the denial at its /v2/ ping
    rc = push(w.reg, tmp .. "/layout", "v1", refresh)
    assert.is_not.equal(0, rc)

    -- restore: the same image again
    W.policy(sub, w.rg, w.vault, "add", principal)
    rc, out = pull(w.reg, "v1", tmp .. "/restored", refresh)
    assert.equal(0, rc, out)
    assert.equal(img.manifest, (pulled(tmp .. "/restored")))

    -- rotate to a new key version, retire the old one: pulls and pushes still work
    local kid2 = W.create_key(w.vault, "cmkkey")
    local r = E.arm("PATCH", W.reg_path(sub, w.rg, w.reg), { properties = { encryption = { keyVaultProperties = {
      keyIdentifier = kid2, identity = w.uai.properties.clientId } } } }, { api_version = W.ACR_API })
    assert.equal("Succeeded", W.wait(r).status)
    W.set_key_enabled(w.kid, false)
    assert.equal(kid2, E.control("GET", "registries/content-key?id=" .. W.reg_path(sub, w.rg, w.reg)).json.kid)
    rc, out = pull(w.reg, "v1", tmp .. "/rotated", refresh)
    assert.equal(0, rc, out)
    md, layer = pulled(tmp .. "/rotated")
    assert.equal(img.manifest, md)
    assert.equal(img.layer_bytes, layer)
    local img2 = build_image(tmp .. "/layout2", "v2")
    rc, out = push(w.reg, tmp .. "/layout2", "v2", refresh)
    assert.equal(0, rc, out)
    rc, out = pull(w.reg, "v2", tmp .. "/v2", refresh)
    assert.equal(0, rc, out)
    assert.equal(img2.manifest, (pulled(tmp .. "/v2")))
  end)
end)
