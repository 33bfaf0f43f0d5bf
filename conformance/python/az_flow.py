"""The article "Encrypt registry using a customer-managed key", its Azure CLI commands as written,
run by Debian's unmodified azure-cli against the emulator through its HTTPS proxy (TLS verified
with REQUESTS_CA_BUNDLE). After each command the state it leaves is read back from the emulator
directly (emu_client), not through az.

Step outcomes:
  ok <step>                 the article's command succeeded and left the expected state
  ok <step> (debian-broken) Debian's az 2.45 cannot run this command (it fails before sending a
                            request: see conformance/README.md); the same request is sent with
                            `az rest` instead, so the flow goes on, and checked
  ok <step> (article-error) the command as written fails against Azure too (see README); the
                            refusal is checked, then the corrected command
  FAIL <step>: details
Ends with "N passed, N failed"; exit 1 when a step failed. Needs the emulator's exports
(tools included) and AZURE_CONFIG_DIR pointing at a scratch directory.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from emu_client import Emulator

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
TIMING = os.environ.get("CONFORMANCE_TIMING")

emu = Emulator()
SUFFIX = "%04x" % (int(time.time() * 1000) & 0xffff)
N = {  # the article's placeholders
    "rg": "cmk-az-rg", "identity": "cmk-az-identity", "vault": "cmkazkv" + SUFFIX, "key": "cmkazkey",
    "registry": "cmkazreg" + SUFFIX, "registry2": "cmkazver" + SUFFIX, "dep_registry": "cmkazdep" + SUFFIX,
    "dep_registry2": "cmkaznw" + SUFFIX, "dep_identity": "cmk-az-dep-id", "dep_identity2": "cmk-az-nw-id",
}
VARS = {}  # shell variables the article sets ($identityID, $keyID, ...)
results = {"passed": 0, "failed": 0}
WORK = tempfile.mkdtemp(prefix="azcmk-az-flow-")
shutil.copy(os.path.join(ROOT, "examples", "cmk-template.json"), os.path.join(WORK, "CMKtemplate.json"))


class Failed(Exception):
    pass


def sh(text, capture=None, expect_fail=False):
    """Runs article text with bash (its variables exported); returns (rc, stdout+stderr, captured)."""
    script = text
    if capture:
        script += '\nprintf "\\n__CAPTURE__%s" "$' + capture + '"'
    envv = dict(os.environ)
    envv.update(VARS)
    p = subprocess.run(["bash", "-c", script], cwd=WORK, env=envv, capture_output=True, text=True)
    out = p.stdout + p.stderr
    value = None
    if capture and "__CAPTURE__" in p.stdout:
        value = p.stdout.rsplit("__CAPTURE__", 1)[1].strip()
        out = out.replace("__CAPTURE__" + value, "")
    if p.returncode != 0 and not expect_fail:
        raise Failed("exit %d: %s" % (p.returncode, out.strip()[-1500:]))
    return p.returncode, out, value


def check(cond, what):
    if not cond:
        raise Failed(what)


def step(name, fn, note=""):
    t0 = time.time()
    try:
        said = fn()
        note = "; ".join(x for x in (note, said if isinstance(said, str) else "") if x)
        results["passed"] += 1
        print("ok   %s%s" % (name, (" (%s)" % note) if note else ""))
    except Failed as e:
        results["failed"] += 1
        print("FAIL %s: %s" % (name, e))
    except Exception as e:  # a bug in this script is a failure too, with its reason
        results["failed"] += 1
        print("FAIL %s: %s: %s" % (name, type(e).__name__, e))
    if TIMING:
        print("  %.1f s %s" % (time.time() - t0, name), file=sys.stderr)
    sys.stdout.flush()


def debian_broken(text, signature):
    """The article's command fails inside Debian's az before any request: check it fails the known way."""
    rc, out, _ = sh(text, expect_fail=True)
    check(rc != 0 and signature in out, "expected Debian's az to fail with %r, got rc %d: %s" % (signature, rc,
                                                                                                  out[-600:]))


def arm(method, path, api, body=None):
    return emu.arm(method, path, api, body)


def rg_path():
    return emu.rg_path(N["rg"])


def vault_path(name=None):
    return rg_path() + "/providers/Microsoft.KeyVault/vaults/" + (name or N["vault"])


def registry(name=None):
    st, b = arm("GET", rg_path() + "/providers/Microsoft.ContainerRegistry/registries/" + (name or N["registry"]),
                "2025-04-01")
    check(st == 200, "registry GET %s: %s" % (st, b))
    return b


def policy_of(oid):
    st, v = arm("GET", vault_path(), "2024-11-01")
    check(st == 200, "vault GET %s" % st)
    for p in v["properties"].get("accessPolicies", []):
        if p["objectId"].lower() == oid.lower():
            return p
    return None


def v2_status(name):
    r = emu.request("GET", "https://%s.azurecr.io/v2/" % name, token=None)
    return r.status_code


def kv_rest(method, path, body=None, query=None):
    """What `az keyvault key ...` would send, through `az rest` (Debian's key commands cannot start)."""
    text = 'az rest --method %s --url "https://%s.vault.azure.net%s?api-version=7.4" --resource ' \
           'https://vault.azure.net' % (method, N["vault"], path)
    if body is not None:
        text += " --body '%s'" % json.dumps(body)
    if query:
        text += " --query '%s' --output tsv" % query
    _, out, _ = sh(text + "\n", capture=None)
    return out.strip()


# ---------------------------------------------------------------- the steps

def login():
    sh('az login --service-principal -u "$AZURE_CLIENT_ID" -p "$AZURE_CLIENT_SECRET" --tenant "$AZURE_TENANT_ID" '
       '--output none')
    _, out, _ = sh("az account show --query id --output tsv")
    check(out.strip() == emu.sub, "default subscription %r" % out)


def group_create():
    sh("az group create --name %s --location westus" % N["rg"])
    st, b = arm("GET", rg_path(), "2021-04-01")
    check(st == 200 and b["location"] == "westus", "group: %s %s" % (st, b))


def identity_create():
    sh("az identity create \\\n  --resource-group %s \\\n  --name %s" % (N["rg"], N["identity"]))
    st, b = arm("GET", rg_path() + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" + N["identity"],
                "2023-01-31")
    check(st == 200, "identity GET %s" % st)
    VARS["_client"] = b["properties"]["clientId"]
    VARS["_principal"] = b["properties"]["principalId"]
    VARS["_id"] = b["id"]


def identity_vars():
    _, _, i = sh("identityID=$(az identity show --resource-group %s --name %s --query 'id' --output tsv)"
                 % (N["rg"], N["identity"]), capture="identityID")
    _, _, p = sh("identityPrincipalID=$(az identity show --resource-group %s --name %s --query 'principalId' "
                 "--output tsv)" % (N["rg"], N["identity"]), capture="identityPrincipalID")
    check(i == VARS["_id"] and p == VARS["_principal"], "got %r %r" % (i, p))
    VARS["identityID"], VARS["identityPrincipalID"] = i, p


def keyvault_create():
    sh("az keyvault create --name %s \\\n  --resource-group %s \\\n  --enable-purge-protection" % (N["vault"], N["rg"]))
    st, v = arm("GET", vault_path(), "2024-11-01")
    check(st == 200, "vault GET %s" % st)
    p = v["properties"]
    check(p.get("enablePurgeProtection") is True and p.get("enableSoftDelete") is True, "flags %s" % p)


def keyvault_create_soft_delete_flag():
    # 2020 translations: `--enable-soft-delete` (soft delete became the default and the flag went away)
    rc, out, _ = sh("az keyvault create --name %s \\\n  --resource-group %s \\\n  --enable-soft-delete \\\n"
                    "  --enable-purge-protection" % (N["vault"] + "s", N["rg"]), expect_fail=True)
    if rc == 0:
        st, v = arm("GET", vault_path(N["vault"] + "s"), "2024-11-01")
        check(st == 200 and v["properties"].get("enablePurgeProtection") is True, "vault %s" % st)
        return "az 2.45 still takes --enable-soft-delete"
    check("unrecognized arguments: --enable-soft-delete" in out, "rc %d: %s" % (rc, out[-400:]))
    return "az no longer knows --enable-soft-delete"


def keyvault_id():
    _, _, k = sh("keyvaultID=$(az keyvault show --resource-group %s --name %s --query 'id' --output tsv)"
                 % (N["rg"], N["vault"]), capture="keyvaultID")
    check(k.lower() == vault_path().lower(), "keyvaultID %r" % k)
    VARS["keyvaultID"] = k


def set_policy():
    sh("az keyvault set-policy \\\n  --resource-group %s \\\n  --name %s \\\n  --object-id $identityPrincipalID \\\n"
       "  --key-permissions get unwrapKey wrapKey\n" % (N["rg"], N["vault"]))
    p = policy_of(VARS["identityPrincipalID"])
    check(p and sorted(x.lower() for x in p["permissions"]["keys"]) == ["get", "unwrapkey", "wrapkey"],
          "policy %s" % p)


def role_assignment():
    debian_broken('az role assignment create --assignee $identityPrincipalID \\\n'
                  '  --role "Key Vault Crypto Service Encryption User" \\\n  --scope $keyvaultID',
                  "object has no attribute 'config'")
    # the request az would send, Graph lookup done: PUT the assignment with az rest
    ra = "%s/providers/Microsoft.Authorization/roleAssignments/%s" % (VARS["keyvaultID"],
                                                                       "7f0c2b3e-5d4a-4b6c-9e8f-0a1b2c3d4e5f")
    body = {"properties": {"roleDefinitionId": "/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/"
                           "e147488a-f6f5-4113-8e2d-b22465e65bf6" % emu.sub,
                           "principalId": VARS["identityPrincipalID"], "principalType": "ServicePrincipal"}}
    sh("az rest --method put --url 'https://management.azure.com%s?api-version=2022-04-01' --body '%s' --output none"
       % (ra, json.dumps(body)))
    st, b = arm("GET", ra, "2022-04-01")
    check(st == 200 and b["properties"]["principalId"] == VARS["identityPrincipalID"], "assignment %s" % st)


def trusted_services():
    sh("az keyvault update --name %s --resource-group %s --bypass AzureServices" % (N["vault"], N["rg"]))
    st, v = arm("GET", vault_path(), "2024-11-01")
    check(v["properties"]["networkAcls"]["bypass"] == "AzureServices", "networkAcls %s" % v["properties"])


def key_create():
    debian_broken("az keyvault key create \\\n  --name %s \\\n  --vault-name %s" % (N["key"], N["vault"]),
                  "No module named 'azure.keyvault.v7_0'")
    kid = kv_rest("post", "/keys/%s/create" % N["key"], {"kty": "RSA"}, query="key.kid")
    check(kid.startswith("https://%s.vault.azure.net/keys/%s/" % (N["vault"], N["key"])), "kid %r" % kid)
    VARS["_kid1"] = kid


def key_id_versioned():
    debian_broken("keyID=$(az keyvault key show \\\n  --name %s \\\n  --vault-name %s \\\n  --query 'key.kid' "
                  "--output tsv)\n[ -n \"$keyID\" ]" % (N["key"], N["vault"]), "No module named 'azure.keyvault")
    VARS["keyID"] = kv_rest("get", "/keys/" + N["key"], query="key.kid")
    check(VARS["keyID"] == VARS["_kid1"], "keyID %r" % VARS["keyID"])


def key_id_versionless():
    _, _, k = sh('keyID=$(echo $keyID | sed -e "s/\\/[^/]*$//")', capture="keyID")
    check(k == "https://%s.vault.azure.net/keys/%s" % (N["vault"], N["key"]), "versionless %r" % k)
    VARS["keyIDversionless"] = k


def acr_create():
    sh("az acr create \\\n  --resource-group %s \\\n  --name %s \\\n  --identity $identityID \\\n"
       "  --key-encryption-key $keyID \\\n  --sku Premium" % (N["rg"], N["registry"]))
    kvp = registry()["properties"]["encryption"]["keyVaultProperties"]
    check(kvp["keyIdentifier"] == VARS["keyID"] and kvp["identity"] == VARS["_client"], "encryption %s" % kvp)
    check(v2_status(N["registry"]) == 401, "data plane should serve (401)")


def acr_create_versionless():
    env_key = VARS["keyID"]
    VARS["keyID"] = VARS["keyIDversionless"]
    try:
        sh("az acr create \\\n  --resource-group %s \\\n  --name %s \\\n  --identity $identityID \\\n"
           "  --key-encryption-key $keyID \\\n  --sku Premium" % (N["rg"], N["registry2"]))
    finally:
        VARS["keyID"] = env_key
    kvp = registry(N["registry2"])["properties"]["encryption"]["keyVaultProperties"]
    check(kvp["keyRotationEnabled"] is True and kvp["versionedKeyIdentifier"] == VARS["_kid1"], "%s" % kvp)


def encryption_show():
    _, out, _ = sh("az acr encryption show --name %s" % N["registry"])
    shown = json.loads(out[out.index("{"):])
    check(shown["status"] == "enabled" and shown["keyVaultProperties"]["keyIdentifier"] == VARS["keyID"],
          "shown %s" % shown)


def new_key_version():
    # as written, `–-name` starts with an en dash: az would refuse it even if it could run (README)
    debian_broken("az keyvault key create \\\n  --name %s \\\n  --vault-name %s" % (N["key"], N["vault"]),
                  "No module named 'azure.keyvault.v7_0'")
    kid = kv_rest("post", "/keys/%s/create" % N["key"], {"kty": "RSA"}, query="key.kid")
    check(kid != VARS["_kid1"], "no new version")
    VARS["_kid2"] = kid


def rotate_user():
    text = "az acr encryption rotate-key \\\n  --name %s \\\n  --key-encryption-key %s \\\n  --identity %s"
    rc, out, _ = sh(text % (N["registry"], VARS["_kid2"], VARS["identityPrincipalID"]), expect_fail=True)
    check(rc != 0 and "does not have access to identity '%s'" % VARS["identityPrincipalID"] in out,
          "the principal id should be refused as Azure refuses it, got rc %d: %s" % (rc, out[-400:]))
    sh(text % (N["registry"], VARS["_kid2"], VARS["_client"]))
    kvp = registry()["properties"]["encryption"]["keyVaultProperties"]
    check(kvp["versionedKeyIdentifier"] == VARS["_kid2"] and kvp.get("lastKeyRotationTimestamp"), "%s" % kvp)


def acr_login():
    # not in the article, but what an operator runs next: the registry's token exchange
    # (/oauth2/exchange, /oauth2/token) and the data plane, through the proxy
    _, out, _ = sh("az acr login --name %s --expose-token --output json" % N["registry"])
    tok = json.JSONDecoder().raw_decode(out[out.index("{"):])[0]  # az's warning follows on stderr
    check(tok.get("loginServer") == N["registry"] + ".azurecr.io" and tok.get("accessToken", "").count(".") == 2,
          "expose-token answer %s" % list(tok))
    _, out, _ = sh("az acr repository list --name %s --output json" % N["registry"])
    check(isinstance(json.JSONDecoder().raw_decode(out[out.index("["):])[0], list), "repository list %r" % out[-300:])


def revoke():
    sh("az keyvault delete-policy \\\n  --resource-group %s \\\n  --name %s \\\n  --object-id $identityPrincipalID"
       % (N["rg"], N["vault"]))
    check(policy_of(VARS["identityPrincipalID"]) is None, "policy still there")
    # the identity still holds the RBAC role of the RBAC step: take it away as well to revoke
    ra = "%s/providers/Microsoft.Authorization/roleAssignments/7f0c2b3e-5d4a-4b6c-9e8f-0a1b2c3d4e5f" % VARS[
        "keyvaultID"]
    arm("DELETE", ra, "2022-04-01")
    check(v2_status(N["registry"]) == 403, "registry data plane should answer 403 once the key is revoked")
    rc, out, _ = sh("az acr login --name %s --expose-token --output json" % N["registry"], expect_fail=True)
    check(rc != 0 and "have access to registry" in out, "az acr login while revoked: rc %d: %s" % (rc, out[-300:]))
    # access back (set-policy again): the registry serves again, az acr login works again
    set_policy()
    check(v2_status(N["registry"]) == 401, "registry should serve again")
    acr_login()


def identity_assign_uai():
    sh('az acr identity assign -n %s \\\n    --identities "%s"' % (N["registry"], VARS["identityID"]))
    ids = registry()["identity"]["userAssignedIdentities"]
    check(any(k.lower() == VARS["identityID"].lower() for k in ids), "identities %s" % ids)


def identity_assign_guid():
    # 2020-21 translations: `--identities <the GUID from the error>`; az makes it a resource name
    rc, out, _ = sh("az acr identity assign -n %s --identities %s" % (N["registry"], VARS["_client"]),
                    expect_fail=True)
    check(rc != 0 and "userAssignedIdentities/%s' does not exist" % VARS["_client"] in out,
          "rc %d: %s" % (rc, out[-400:]))


def system_identity_and_firewall():
    sh("az acr identity assign -n %s --identities [system]" % N["registry"])
    ident = registry()["identity"]
    check("systemassigned" in ident["type"].lower().replace(" ", ""), "identity %s" % ident)
    VARS["systemPrincipal"] = ident["principalId"]
    sh("az keyvault set-policy --resource-group %s --name %s --object-id %s --key-permissions get unwrapKey wrapKey"
       % (N["rg"], N["vault"], VARS["systemPrincipal"]))
    # the Key Vault firewall with trusted services (older translations' advanced scenario)
    sh("az keyvault update --name %s --resource-group %s --default-action Deny --bypass AzureServices"
       % (N["vault"], N["rg"]))
    st, v = arm("GET", vault_path(), "2024-11-01")
    check(v["properties"]["networkAcls"]["defaultAction"] == "Deny", "firewall %s" % v["properties"])


def rotate_system():
    sh("az acr encryption rotate-key \\\n  --name %s \\\n  --key-encryption-key %s \\\n  --identity [system]"
       % (N["registry"], VARS["keyIDversionless"]))
    kvp = registry()["properties"]["encryption"]["keyVaultProperties"]
    check(kvp["identity"] == "system" and kvp["keyRotationEnabled"] is True, "%s" % kvp)
    check(v2_status(N["registry"]) == 401, "registry serves through the firewall (trusted service)")
    # firewall off again for the deployments' user-assigned identities
    sh("az keyvault update --name %s --resource-group %s --default-action Allow" % (N["vault"], N["rg"]))


def deploy(no_wait):
    reg, idn = (N["dep_registry2"], N["dep_identity2"]) if no_wait else (N["dep_registry"], N["dep_identity"])
    text = ("az deployment group create \\\n  --resource-group %s \\\n  --template-file CMKtemplate.json \\\n"
            "  --parameters \\\n    registry_name=%s \\\n    identity_name=%s \\\n    vault_name=%s \\\n"
            "    kek_id=%s" % (N["rg"], reg, idn, N["vault"], VARS["_kid2"]))
    if no_wait:
        sh(text + " \\\n  --no-wait")
        sh("az deployment group wait --resource-group %s --name CMKtemplate --created" % N["rg"])
    else:
        sh(text)
    st, d = arm("GET", rg_path() + "/providers/Microsoft.Resources/deployments/CMKtemplate", "2021-04-01")
    check(st == 200 and d["properties"]["provisioningState"] == "Succeeded", "deployment %s" % d)
    _, out, _ = sh("az acr encryption show --name %s" % reg)
    check('"status": "enabled"' in out, "encryption show: %s" % out[-300:])


def group_deployment_create_2020():
    # 2020 translations: `az group deployment create` (deprecated in az 2.45 but still there)
    reg, idn = "cmkazold" + SUFFIX, "cmk-az-old-id"
    sh("az group deployment create \\\n  --resource-group %s \\\n  --template-file CMKtemplate.json \\\n"
       "  --parameters \\\n    registry_name=%s \\\n    identity_name=%s \\\n    vault_name=%s \\\n"
       "    kek_id=%s" % (N["rg"], reg, idn, N["vault"], VARS["_kid2"]))
    kvp = registry(reg)["properties"]["encryption"]["keyVaultProperties"]
    check(kvp["versionedKeyIdentifier"] == VARS["_kid2"], "%s" % kvp)


def emulator_health():
    h = emu.health()
    check(h["internal_errors"] == 0, "internal_errors %s" % h["internal_errors"])


def main():
    emu.control("POST", "config", {"lro": {"polls": 1, "seconds": 0, "retry_after": 0}})
    step("login (seeded service principal)", login)
    step("az group create", group_create)
    step("az identity create", identity_create)
    step("identityID / identityPrincipalID (az identity show --query)", identity_vars)
    step("az keyvault create --enable-purge-protection", keyvault_create)
    step("az keyvault create --enable-soft-delete (2020 translations)", keyvault_create_soft_delete_flag)
    step("keyvaultID (az keyvault show --query id)", keyvault_id)
    step("az keyvault set-policy (get unwrapKey wrapKey)", set_policy)
    step("az role assignment create (Key Vault Crypto Service Encryption User)", role_assignment, "debian-broken")
    step("az keyvault update --bypass AzureServices (trusted services)", trusted_services)
    step("az keyvault key create", key_create, "debian-broken")
    step("keyID with version (az keyvault key show --query key.kid)", key_id_versioned, "debian-broken")
    step("keyID without version (sed)", key_id_versionless)
    step("az acr create --identity --key-encryption-key (versioned)", acr_create)
    step("az acr create --key-encryption-key (versionless: automatic rotation)", acr_create_versionless)
    step("az acr encryption show", encryption_show)
    step("az keyvault key create (new version)", new_key_version, "debian-broken")
    step("az acr encryption rotate-key --identity <user-assigned>", rotate_user, "article-error")
    step("az acr login --expose-token, az acr repository list", acr_login)
    step("az keyvault delete-policy (revoke: az acr login refused), then access back", revoke)
    step("az acr identity assign --identities <resource id>", identity_assign_uai)
    step("az acr identity assign --identities <GUID> (2020-21 translations)", identity_assign_guid, "article-error")
    step("az acr identity assign [system] + policy + firewall Deny", system_identity_and_firewall)
    step("az acr encryption rotate-key --identity [system]", rotate_system)
    step("az deployment group create (the article's template)", lambda: deploy(False))
    step("az deployment group create --no-wait, then wait", lambda: deploy(True))
    step("az group deployment create (2020 translations; deprecated)", group_deployment_create_2020)
    step("emulator internal_errors 0", emulator_health)
    shutil.rmtree(WORK, ignore_errors=True)
    print("%d passed, %d failed" % (results["passed"], results["failed"]))
    sys.exit(1 if results["failed"] else 0)


if __name__ == "__main__":
    main()
