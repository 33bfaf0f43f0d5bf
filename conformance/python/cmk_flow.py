"""The CMK job of conformance/cmk-flow.mjs (its core steps) through the Azure SDK for Python as
Debian packages it (python3-azure: azure-identity 1.13b, azure-keyvault-keys 4.8b (api-version
7.4-preview.1), azure-mgmt-* with their default api-versions), unmodified, reaching the emulator
through its HTTPS proxy with REQUESTS_CA_BUNDLE: a third independent client after azcmk and the
JS SDK. One line per step ("ok <step>" / "FAIL <step>: ..."), then "N passed, N failed".
"""
import base64
import os
import sys
import time
import uuid

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.containerregistry import ContainerRegistryManagementClient
from azure.mgmt.keyvault import KeyVaultManagementClient
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.resource import ResourceManagementClient

from emu_client import Emulator, env

emu = Emulator()
SUB, TENANT = emu.sub, emu.tenant
cred = ClientSecretCredential(TENANT, env("AZURE_CLIENT_ID"), env("AZURE_CLIENT_SECRET"))
resources = ResourceManagementClient(cred, SUB)
msi = ManagedServiceIdentityClient(cred, SUB)
vaults = KeyVaultManagementClient(cred, SUB)
acr = ContainerRegistryManagementClient(cred, SUB)
authz = AuthorizationManagementClient(cred, SUB)

SUFFIX = "%04x" % (int(time.time() * 1000) & 0xffff)
RG, UAI = "py-cmk-rg", "py-cmk-identity"
VAULT, RBAC_VAULT = "pycmkkv" + SUFFIX, "pycmkrbac" + SUFFIX
REG, RBAC_REG = "pycmkreg" + SUFFIX, "pycmkrbacreg" + SUFFIX
CRYPTO_SERVICE_ENCRYPTION_USER = "e147488a-f6f5-4113-8e2d-b22465e65bf6"
CRYPTO_OFFICER = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603"
S = {}
results = {"passed": 0, "failed": 0}
failed = set()


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def step(name, fn, needs=()):
    missing = [n for n in needs if n in failed]
    if missing:
        results["failed"] += 1
        failed.add(name)
        print("FAIL %s: not run, needs %s" % (name, ", ".join(missing)))
        return
    try:
        fn()
        results["passed"] += 1
        print("ok   %s" % name)
    except HttpResponseError as e:
        results["failed"] += 1
        failed.add(name)
        print("FAIL %s: HttpResponseError %s %s" % (name, e.status_code, str(e.message)[:400]))
    except Exception as e:
        results["failed"] += 1
        failed.add(name)
        print("FAIL %s: %s: %s" % (name, type(e).__name__, str(e)[:400]))
    sys.stdout.flush()


def expect_error(fn, code):
    try:
        fn()
    except HttpResponseError as e:
        check(e.status_code == 400, "status %s" % e.status_code)
        got = e.error.code if e.error else None
        check(got == code, "code %s, expected %s" % (got, code))
        return
    raise AssertionError("no error, expected %s" % code)


def vault_params(rbac=False):
    policies = [] if rbac else [{"tenant_id": TENANT, "object_id": S["owner_oid"],
                                 "permissions": {"keys": ["all"]}}]
    return {"location": "westus", "properties": {
        "tenant_id": TENANT, "sku": {"family": "A", "name": "standard"}, "access_policies": policies,
        "enable_soft_delete": True, "soft_delete_retention_in_days": 7, "enable_purge_protection": True,
        "enable_rbac_authorization": rbac}}


def cmk_registry(name, kid):
    return {"location": "westus", "sku": {"name": "Premium"},
            "identity": {"type": "UserAssigned", "user_assigned_identities": {S["uai"].id: {}}},
            "encryption": {"status": "enabled", "key_vault_properties": {
                "key_identifier": kid, "identity": S["uai"].client_id}}}


# ---------------------------------------------------------------- steps

def token():
    t = cred.get_token("https://management.azure.com/.default")
    payload = t.token.split(".")[1]
    claims = __import__("json").loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    check(claims["tid"] == TENANT, "tid %s" % claims.get("tid"))
    S["owner_oid"] = claims["oid"]


def resource_group():
    resources.resource_groups.create_or_update(RG, {"location": "westus"})
    g = resources.resource_groups.get(RG)
    check(g.location == "westus" and g.properties.provisioning_state == "Succeeded", "group %s" % g)


def identity():
    msi.user_assigned_identities.create_or_update(RG, UAI, {"location": "westus"})
    S["uai"] = msi.user_assigned_identities.get(RG, UAI)
    check(S["uai"].principal_id and S["uai"].client_id and S["uai"].tenant_id == TENANT, "uai %s" % S["uai"])


def vault():
    v = vaults.vaults.begin_create_or_update(RG, VAULT, vault_params()).result()
    check(v.properties.enable_purge_protection and v.properties.enable_soft_delete, "flags")
    check(v.properties.vault_uri == "https://%s.vault.azure.net/" % VAULT, v.properties.vault_uri)


def access_policy():
    vaults.vaults.update_access_policy(RG, VAULT, "add", {"properties": {"access_policies": [
        {"tenant_id": TENANT, "object_id": S["uai"].principal_id,
         "permissions": {"keys": ["get", "wrapKey", "unwrapKey"]}}]}})
    v = vaults.vaults.get(RG, VAULT)
    entry = [p for p in v.properties.access_policies if p.object_id == S["uai"].principal_id]
    check(entry and sorted(entry[0].permissions.keys) == ["get", "unwrapKey", "wrapKey"], "policy %s" % entry)


def key():
    S["keys"] = KeyClient("https://%s.vault.azure.net/" % VAULT, cred)  # api-version 7.4-preview.1
    k = S["keys"].create_rsa_key("cmkkey", size=2048)
    check(k.id.startswith("https://%s.vault.azure.net/keys/cmkkey/" % VAULT), k.id)
    check(k.properties.recovery_level == "CustomizedRecoverable", k.properties.recovery_level)
    S["kid1"] = k.id


def registry_cmk():
    r = acr.registries.begin_create(RG, REG, cmk_registry(REG, S["kid1"])).result()
    check(r.login_server == REG.lower() + ".azurecr.io", r.login_server)
    check(r.encryption.status == "enabled", r.encryption)


def encryption_read():
    r = acr.registries.get(RG, REG)
    kvp = r.encryption.key_vault_properties
    check(kvp.key_identifier == S["kid1"] and kvp.versioned_key_identifier == S["kid1"], kvp)
    check(r.identity.type.lower() == "userassigned", r.identity.type)
    check(kvp.last_key_rotation_timestamp is None, kvp.last_key_rotation_timestamp)


def key_new_version():
    k = S["keys"].create_rsa_key("cmkkey", size=2048)
    check(k.id != S["kid1"], "same version")
    S["kid2"] = k.id
    check(S["keys"].get_key("cmkkey").id == k.id, "latest")
    versions = [p.version for p in S["keys"].list_properties_of_key_versions("cmkkey")]
    check(len(versions) == 2, versions)


def rotate():
    acr.registries.begin_update(RG, REG, {"encryption": {"status": "enabled", "key_vault_properties": {
        "key_identifier": S["kid2"], "identity": S["uai"].client_id}}}).result()
    kvp = acr.registries.get(RG, REG).encryption.key_vault_properties
    check(kvp.versioned_key_identifier == S["kid2"] and kvp.last_key_rotation_timestamp is not None, kvp)


def rbac_vault():
    v = vaults.vaults.begin_create_or_update(RG, RBAC_VAULT, vault_params(rbac=True)).result()
    check(v.properties.enable_rbac_authorization is True, "rbac")


def role_assignment():
    scope = vaults.vaults.get(RG, RBAC_VAULT).id
    for role, principal in ((CRYPTO_SERVICE_ENCRYPTION_USER, S["uai"].principal_id), (CRYPTO_OFFICER, S["owner_oid"])):
        authz.role_assignments.create(scope, str(uuid.uuid4()), {
            "role_definition_id": "/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/%s" % (SUB, role),
            "principal_id": principal, "principal_type": "ServicePrincipal"})
    listed = list(authz.role_assignments.list_for_scope(scope))
    check(any(a.principal_id == S["uai"].principal_id and a.role_definition_id.endswith(CRYPTO_SERVICE_ENCRYPTION_USER)
              for a in listed), "listed %s" % listed)


def rbac_key():
    S["rbac_keys"] = KeyClient("https://%s.vault.azure.net/" % RBAC_VAULT, cred)
    S["rbac_kid"] = S["rbac_keys"].create_rsa_key("cmkkey").id


def registry_rbac():
    r = acr.registries.begin_create(RG, RBAC_REG, cmk_registry(RBAC_REG, S["rbac_kid"])).result()
    check(r.encryption.key_vault_properties.key_identifier == S["rbac_kid"], r.encryption)


def wrap_unwrap():
    c = CryptographyClient(S["kid2"], cred)
    cek = os.urandom(32)
    w = c.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, cek)
    check(c.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, w.encrypted_key).key == cek, "round trip")


def local_wrap_emulator_unwrap():
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    k = S["keys"].get_key("cmkkey")
    pub = rsa.RSAPublicNumbers(int.from_bytes(k.key.e, "big"), int.from_bytes(k.key.n, "big")).public_key()
    cek = os.urandom(32)
    for alg, h in ((KeyWrapAlgorithm.rsa_oaep_256, hashes.SHA256()), (KeyWrapAlgorithm.rsa_oaep, hashes.SHA1())):
        wrapped = pub.encrypt(cek, padding.OAEP(mgf=padding.MGF1(algorithm=h), algorithm=h, label=None))
        got = CryptographyClient(k.id, cred).unwrap_key(alg, wrapped).key
        check(got == cek, "unwrap %s" % alg)


def delete_recover():
    kc = S["keys"]
    kc.create_rsa_key("tmpkey")
    poller = kc.begin_delete_key("tmpkey")
    deleted = poller.result()  # Key Vault pollers: result() does not wait, wait() does
    check(deleted.recovery_id and deleted.scheduled_purge_date, "deleted %s" % deleted)
    poller.wait()
    try:
        kc.get_key("tmpkey")
        raise AssertionError("deleted key still readable")
    except ResourceNotFoundError:
        pass
    poller = kc.begin_recover_deleted_key("tmpkey")
    check(poller.result().name == "tmpkey", "recovered")
    poller.wait()
    check(kc.get_key("tmpkey").name == "tmpkey", "readable again")


def rule_ec_key():
    ec = S["keys"].create_ec_key("eckey", curve="P-256")
    expect_error(lambda: acr.registries.begin_create(RG, "pyecreg" + SUFFIX, cmk_registry("x", ec.id)).result(),
                 "KeyTypeNotSupported")


def rule_standard_sku():
    body = cmk_registry("x", S["kid2"])
    body["sku"] = {"name": "Standard"}
    expect_error(lambda: acr.registries.begin_create(RG, "pystdreg" + SUFFIX, body).result(),
                 "FeatureNotSupportedForSku")


def rule_cmk_existing():
    name = "pyplainreg" + SUFFIX
    acr.registries.begin_create(RG, name, {"location": "westus", "sku": {"name": "Premium"}}).result()
    expect_error(lambda: acr.registries.begin_update(RG, name, {
        "identity": {"type": "UserAssigned", "user_assigned_identities": {S["uai"].id: {}}},
        "encryption": {"status": "enabled", "key_vault_properties": {
            "key_identifier": S["kid2"], "identity": S["uai"].client_id}}}).result(),
        "EncryptionNotSupportedOnExistingRegistry")


def emulator_health():
    h = emu.health()
    check(h["internal_errors"] == 0, "internal_errors %s" % h["internal_errors"])


def main():
    step("token", token)
    step("resource-group", resource_group, ["token"])
    step("identity", identity, ["resource-group"])
    step("vault", vault, ["resource-group"])
    step("access-policy", access_policy, ["vault", "identity"])
    step("key", key, ["vault"])
    step("registry-cmk", registry_cmk, ["key", "access-policy"])
    step("encryption-read", encryption_read, ["registry-cmk"])
    step("key-new-version", key_new_version, ["key"])
    step("rotate", rotate, ["registry-cmk", "key-new-version"])
    step("rbac-vault", rbac_vault, ["resource-group"])
    step("role-assignment", role_assignment, ["rbac-vault", "identity"])
    step("rbac-key", rbac_key, ["role-assignment"])
    step("registry-rbac", registry_rbac, ["rbac-key"])
    step("wrap-unwrap", wrap_unwrap, ["key-new-version"])
    step("local-wrap-emulator-unwrap", local_wrap_emulator_unwrap, ["key-new-version"])
    step("delete-recover", delete_recover, ["key"])
    step("rule-ec-key", rule_ec_key, ["access-policy"])
    step("rule-standard-sku", rule_standard_sku, ["key-new-version"])
    step("rule-cmk-existing", rule_cmk_existing, ["key-new-version"])
    step("emulator-health", emulator_health)
    print("%d passed, %d failed" % (results["passed"], results["failed"]))
    sys.exit(1 if results["failed"] else 0)


if __name__ == "__main__":
    main()
