// The ACR customer-managed-key job, run by the official Azure SDK for JavaScript against the
// azcmk emulator. Run through scripts/conformance.sh (it starts the emulator, installs the
// pinned SDKs and preloads loopback.cjs); alone:
//   eval "$(./bin/azcmk emulator start --port 19443 --dir build/conformance-emulator)"
//   NODE_EXTRA_CA_CERTS=$AZCMK_CA_FILE AZURE_AUTHORITY_HOST=https://login.microsoftonline.com \
//     node --require ./conformance/loopback.cjs conformance/cmk-flow.mjs
// Prints one line per step, "ok <step>" or "FAIL <step>: <details>", then "N passed, N failed";
// exits 1 when a step failed.
import { randomBytes, randomUUID, createPublicKey, publicEncrypt, constants as C } from "node:crypto";
import https from "node:https";
import { readFileSync } from "node:fs";
import { ClientSecretCredential, ClientCertificateCredential, WorkloadIdentityCredential, ManagedIdentityCredential,
  AzureAuthorityHosts } from "@azure/identity";
import { ResourceManagementClient } from "@azure/arm-resources";
import { DeploymentsClient } from "@azure/arm-resourcesdeployments";
import { ManagedServiceIdentityClient } from "@azure/arm-msi";
import { KeyVaultManagementClient } from "@azure/arm-keyvault";
import { AuthorizationManagementClient } from "@azure/arm-authorization";
import { ContainerRegistryManagementClient } from "@azure/arm-containerregistry";
import { KeyClient, CryptographyClient } from "@azure/keyvault-keys";

const env = (name) => {
  const v = process.env[name];
  if (!v) { console.log(`FAIL setup: ${name} is not set`); process.exit(2); }
  return v;
};
const tenantId = env("AZURE_TENANT_ID");
const clientId = env("AZURE_CLIENT_ID");
const clientSecret = env("AZURE_CLIENT_SECRET");
const sub = env("AZURE_SUBSCRIPTION_ID");
const authorityHost = process.env.AZURE_AUTHORITY_HOST || "https://login.microsoftonline.com";
const location = "westeurope";
const POLL = { updateIntervalInMs: 20 };         // ARM pollers (Retry-After still wins)
const KV_POLL = { intervalInMs: 100 };           // Key Vault delete/recover pollers

const CRYPTO_SERVICE_ENCRYPTION_USER = "e147488a-f6f5-4113-8e2d-b22465e65bf6";
const CRYPTO_OFFICER = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603";
const roleDef = (guid) => `/subscriptions/${sub}/providers/Microsoft.Authorization/roleDefinitions/${guid}`;

// Unique names per run: vault names are global and purge protection keeps deleted ones.
const tag = randomBytes(4).toString("hex");
const names = {
  rg: `conf-${tag}`, uai: `conf-uai-${tag}`, kv: `confkv${tag}`, kv2: `confrbac${tag}`,
  key: "cmk", ecKey: "ec", scratch: "scratch",
  reg: `confreg${tag}`, reg2: `confrbac${tag}`, regStd: `confstd${tag}`, regEc: `confec${tag}`,
  regPlain: `confplain${tag}`, regTpl: `conftpl${tag}`, regTplEc: `conftplec${tag}`,
};

const credential = new ClientSecretCredential(tenantId, clientId, clientSecret, { authorityHost });
const resources = new ResourceManagementClient(credential, sub);
const deployments = new DeploymentsClient(credential, sub);
const msi = new ManagedServiceIdentityClient(credential, sub);
const kvm = new KeyVaultManagementClient(credential, sub);
const authz = new AuthorizationManagementClient(credential, sub);
const acr = new ContainerRegistryManagementClient(credential, sub);

// ---- step runner -------------------------------------------------------------------------
const ctx = {};
const done = new Set();
let passed = 0;
let failed = 0;

function describe(e) {
  if (e && e.name === "RestError") {
    const rid = e.response?.headers?.get?.("x-ms-request-id");
    return `RestError ${e.statusCode} ${e.code}: ${String(e.message).split("\n")[0].slice(0, 300)}` +
      (rid ? ` (request id ${rid})` : "");
  }
  return String(e && e.stack ? e.stack.split("\n").slice(0, 3).join(" | ") : e).slice(0, 600);
}

// CMK_FLOW_CORE=1 (bench/conformance.sh): only the CMK job itself, the same calls as
// bench/conformance-flow.lua does through azcmk; the extra credential and denial checks are left out.
const EXTRA = new Set(["token-certificate", "token-workload-identity", "token-bad-secret", "rotate-versionless", "denied",
  "throttled-retry", "template-deployment", "token-managed-identity", "identity-wraps", "sovereign-clouds",
  "rotate-system-identity", "rule-cmk-locked"]);
const CORE_ONLY = Boolean(process.env.CMK_FLOW_CORE);

async function step(name, needs, fn) {
  if (CORE_ONLY && EXTRA.has(name)) return;
  const missing = needs.filter((n) => !done.has(n));
  if (missing.length) {
    failed++;
    console.log(`FAIL ${name}: not run, needs ${missing.join(", ")}`);
    return;
  }
  const t0 = Date.now();
  try {
    const detail = await fn();
    passed++;
    done.add(name);
    console.log(`ok ${name}${detail ? ` (${detail})` : ""}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${describe(e)}`);
  }
  if (process.env.CONFORMANCE_TIMING) console.error(`  ${name}: ${Date.now() - t0} ms`);
}

function check(cond, what) {
  if (!cond) throw new Error(what);
}
const eq = (got, want, what) => check(got === want, `${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
const b64u = (buf) => Buffer.from(buf).toString("base64url");
const versionOf = (kid) => kid.split("/").pop();

// The SDK must surface the service's refusal as a RestError with Azure's status and code.
async function expectRestError(promise, status, codeCheck) {
  let res;
  try {
    res = await promise;
  } catch (e) {
    check(e && e.name === "RestError", `want RestError ${status}, got ${describe(e)}`);
    eq(e.statusCode, status, "statusCode");
    check(typeof e.code === "string" && e.code.length > 0, `RestError without code: ${describe(e)}`);
    if (codeCheck) codeCheck(e.code, e);
    return `${e.statusCode} ${e.code}`;
  }
  throw new Error(`want RestError ${status}, the call succeeded: ${JSON.stringify(res).slice(0, 200)}`);
}

// The emulator's control API (/_emulator/..., no auth), through the same loopback mapping.
function control(method, path, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = https.request({ host: "management.azure.com", port: 443, path, method,
      headers: data ? { "content-type": "application/json", "content-length": Buffer.byteLength(data) } : {} }, (res) => {
      let text = "";
      res.on("data", (d) => { text += d; });
      res.on("end", () => {
        if (res.statusCode >= 300) return reject(new Error(`${method} ${path}: ${res.statusCode} ${text.slice(0, 200)}`));
        try { resolve(text ? JSON.parse(text) : null); } catch (e) { resolve(text); }
      });
    });
    req.on("error", reject);
    req.end(data);
  });
}
const controlGet = (path) => control("GET", path);
async function logSince(seq) {
  const text = await control("GET", `/_emulator/log?since=${seq}`);
  const lines = typeof text === "string" ? text.split("\n") : [JSON.stringify(text)];
  return lines.filter(Boolean).map((l) => { try { return JSON.parse(l); } catch { return null; } }).filter((e) => e && e.method);
}

function jwtClaims(token) {
  return JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8"));
}

function registryBody(sku, kid, opts = {}) {
  const body = {
    location,
    sku: { name: sku },
    identity: { type: "UserAssigned", userAssignedIdentities: { [ctx.uai.id]: {} } },
    adminUserEnabled: false,
    anonymousPullEnabled: false,
  };
  if (kid) body.encryption = { status: "enabled", keyVaultProperties: { keyIdentifier: kid, identity: ctx.uai.clientId } };
  return Object.assign(body, opts);
}

function checkEncryption(reg, kid, what) {
  const enc = reg.encryption || {};
  const kvp = enc.keyVaultProperties || {};
  eq(enc.status, "enabled", `${what} encryption.status`);
  eq(kvp.keyIdentifier, kid, `${what} keyIdentifier`);
  eq(kvp.versionedKeyIdentifier, kid, `${what} versionedKeyIdentifier`);
  eq(kvp.identity, ctx.uai.clientId, `${what} keyVaultProperties.identity`);
  eq(kvp.keyRotationEnabled, false, `${what} keyRotationEnabled (versioned kid)`);
  check(typeof reg.identity?.type === "string" && reg.identity.type.toLowerCase() === "userassigned",
    `${what} identity.type: got ${JSON.stringify(reg.identity?.type)}`);
  const ids = Object.keys(reg.identity?.userAssignedIdentities || {});
  check(ids.some((id) => id.toLowerCase() === ctx.uai.id.toLowerCase()),
    `${what} identity.userAssignedIdentities lacks the identity: ${JSON.stringify(ids)}`);
  eq(reg.provisioningState, "Succeeded", `${what} provisioningState`);
}

// ---- the job -----------------------------------------------------------------------------
await step("token", [], async () => {
  const t = await credential.getToken("https://management.azure.com/.default");
  const c = jwtClaims(t.token);
  eq(c.tid, tenantId, "token tid");
  check(typeof c.oid === "string", "token has no oid");
  ctx.ownerOid = c.oid;
});

// The other ways the job can authenticate, and Entra ID's error as the SDK surfaces it.
await step("token-certificate", ["token"], async () => {
  ctx.seed = await controlGet("/_emulator/seed");
  const c = new ClientCertificateCredential(tenantId, clientId, { certificatePath: ctx.seed.owner.certificate_file }, { authorityHost });
  eq(jwtClaims((await c.getToken("https://management.azure.com/.default")).token).oid, ctx.ownerOid, "oid");
  const c2 = new ClientCertificateCredential(tenantId, clientId,
    { certificatePath: ctx.seed.owner.certificate_file, sendCertificateChain: true }, { authorityHost });
  eq(jwtClaims((await c2.getToken("https://vault.azure.net/.default")).token).aud.replace(/\/$/, ""), "https://vault.azure.net", "aud");
});

await step("token-workload-identity", ["token-certificate"], async () => {
  const c = new WorkloadIdentityCredential({ tenantId, clientId: ctx.seed.workload.app_id,
    tokenFilePath: ctx.seed.workload.token_file, authorityHost });
  eq(jwtClaims((await c.getToken("https://management.azure.com/.default")).token).tid, tenantId, "tid");
});

await step("token-bad-secret", [], async () => {
  // MSAL raises a ServerError for Entra's 401 invalid_client; @azure/identity 4.x wraps every
  // MSAL ServerError in AuthenticationRequiredError (msal/utils.js handleMsalError) and
  // keeps MSAL's message "invalid_client: Error(s): 7000215 - ... AADSTS7000215: ...".
  const c = new ClientSecretCredential(tenantId, clientId, "not-the-secret", { authorityHost });
  try {
    await c.getToken("https://management.azure.com/.default");
  } catch (e) {
    eq(e.name, "AuthenticationRequiredError", "error name");
    check(/^invalid_client: Error\(s\): 7000215 /.test(e.message), `message: ${e.message}`);
    check(/AADSTS7000215: Invalid client secret provided/.test(e.message), `message: ${e.message}`);
    return "AuthenticationRequiredError invalid_client 7000215";
  }
  throw new Error("a wrong secret got a token");
});

await step("resource-group", ["token"], async () => {
  const rg = await resources.resourceGroups.createOrUpdate(names.rg, { location, tags: { purpose: "conformance" } });
  eq(rg.name, names.rg, "name");
  eq(rg.properties?.provisioningState, "Succeeded", "provisioningState");
  const got = await resources.resourceGroups.get(names.rg);
  eq(got.location, location, "location");
});

await step("identity", ["resource-group"], async () => {
  const id = await msi.userAssignedIdentities.createOrUpdate(names.rg, names.uai, { location });
  for (const f of ["principalId", "clientId", "tenantId", "id"]) check(typeof id[f] === "string" && id[f], `identity.${f} missing`);
  eq(id.tenantId, tenantId, "tenantId");
  const got = await msi.userAssignedIdentities.get(names.rg, names.uai);
  eq(got.principalId, id.principalId, "principalId on get");
  ctx.uai = id;
});

// A VM running the job: IMDS (reached through AZURE_POD_IDENTITY_AUTHORITY_HOST=http://127.0.0.1,
// port 80 mapped to the emulator's http port), system-assigned, then the job's user-assigned
// identity attached to the "VM" and chosen by client id and by resource id. (MSAL caches the
// managed-identity source per process, so App Service is left to the emulator's own specs.)
await step("token-managed-identity", ["identity", "token-certificate"], async () => {
  process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = "http://127.0.0.1";
  const oid = async (opts) => jwtClaims((await new ManagedIdentityCredential(opts).getToken(
    "https://management.azure.com/.default")).token).oid;
  eq(await oid(), ctx.seed.vm.principal_id, "system-assigned oid");
  await control("POST", "/_emulator/vm/identities", { id: ctx.uai.id });
  eq(await oid({ clientId: ctx.uai.clientId }), ctx.uai.principalId, "user-assigned (client id) oid");
  eq(await oid({ resourceId: ctx.uai.id }), ctx.uai.principalId, "user-assigned (resource id) oid");
});

await step("vault", ["identity"], async () => {
  const v = await kvm.vaults.beginCreateOrUpdateAndWait(names.rg, names.kv, {
    location,
    properties: {
      tenantId, sku: { family: "A", name: "standard" },
      enableSoftDelete: true, softDeleteRetentionInDays: 7, enablePurgeProtection: true,
      accessPolicies: [{
        tenantId, objectId: ctx.ownerOid,
        permissions: { keys: ["get", "list", "create", "delete", "recover", "wrapKey", "unwrapKey", "encrypt", "decrypt"] },
      }],
    },
  }, POLL);
  eq(v.properties?.enablePurgeProtection, true, "enablePurgeProtection");
  eq(v.properties?.provisioningState, "Succeeded", "provisioningState");
  eq(v.properties?.vaultUri, `https://${names.kv}.vault.azure.net/`, "vaultUri");
  ctx.vaultUri = v.properties.vaultUri;
  ctx.vault = v;
});

await step("access-policy", ["vault"], async () => {
  const res = await kvm.vaults.updateAccessPolicy(names.rg, names.kv, "add", {
    properties: { accessPolicies: [{ tenantId, objectId: ctx.uai.principalId, permissions: { keys: ["get", "wrapKey", "unwrapKey"] } }] },
  });
  const entry = (res.properties?.accessPolicies || []).find((p) => p.objectId === ctx.uai.principalId);
  check(entry, "the response lacks the new access policy");
  const v = await kvm.vaults.get(names.rg, names.kv);
  const stored = v.properties.accessPolicies.find((p) => p.objectId === ctx.uai.principalId);
  check(stored, "the vault lacks the new access policy");
  eq([...stored.permissions.keys].map((k) => k.toLowerCase()).sort().join(","), "get,unwrapkey,wrapkey", "permissions");
});

await step("key", ["vault"], async () => {
  ctx.keys = new KeyClient(ctx.vaultUri, credential);
  const k = await ctx.keys.createRsaKey(names.key, { keySize: 2048 });
  eq(k.keyType, "RSA", "kty");
  check(/^[0-9a-f]{32}$/.test(versionOf(k.id)), `kid version: ${k.id}`);
  eq(k.id, `${ctx.vaultUri}keys/${names.key}/${k.properties.version}`, "kid");
  eq(k.properties.recoveryLevel, "CustomizedRecoverable", "recoveryLevel (purge protection, 7 days)");
  ctx.key = k;
});

await step("registry-cmk", ["key", "access-policy"], async () => {
  const reg = await acr.registries.beginCreateAndWait(names.rg, names.reg, registryBody("Premium", ctx.key.id), POLL);
  eq(reg.loginServer, `${names.reg}.azurecr.io`, "loginServer");
  checkEncryption(reg, ctx.key.id, "poller result");
});

await step("encryption-read", ["registry-cmk"], async () => {
  const reg = await acr.registries.get(names.rg, names.reg);
  checkEncryption(reg, ctx.key.id, "get");
  check(reg.encryption.keyVaultProperties.lastKeyRotationTimestamp === undefined, "lastKeyRotationTimestamp before any rotation");
});

await step("key-new-version", ["key"], async () => {
  const k2 = await ctx.keys.createRsaKey(names.key, { keySize: 2048 });
  check(k2.properties.version !== ctx.key.properties.version, "create did not make a new version");
  const latest = await ctx.keys.getKey(names.key);
  eq(latest.id, k2.id, "getKey returns the newest version");
  const old = await ctx.keys.getKey(names.key, { version: ctx.key.properties.version });
  eq(old.id, ctx.key.id, "getKey of the old version");
  const versions = [];
  for await (const v of ctx.keys.listPropertiesOfKeyVersions(names.key)) versions.push(v.version);
  eq(versions.sort().join(","), [ctx.key.properties.version, k2.properties.version].sort().join(","), "listPropertiesOfKeyVersions");
  const all = [];
  for await (const kp of ctx.keys.listPropertiesOfKeys()) all.push(kp.name);
  check(all.includes(names.key), `listPropertiesOfKeys: ${all}`);
  ctx.key2 = k2;
});

await step("rotate", ["encryption-read", "key-new-version"], async () => {
  const before = Date.now();
  const reg = await acr.registries.beginUpdateAndWait(names.rg, names.reg, {
    encryption: { status: "enabled", keyVaultProperties: { keyIdentifier: ctx.key2.id, identity: ctx.uai.clientId } },
  }, POLL);
  checkEncryption(reg, ctx.key2.id, "poller result");
  const got = await acr.registries.get(names.rg, names.reg);
  checkEncryption(got, ctx.key2.id, "get");
  const ts = got.encryption.keyVaultProperties.lastKeyRotationTimestamp;
  check(ts instanceof Date && !Number.isNaN(ts.getTime()), `lastKeyRotationTimestamp: ${ts}`);
  check(Math.abs(ts.getTime() - before) < 10 * 60 * 1000, `lastKeyRotationTimestamp ${ts.toISOString()} is not now`);
});

await step("rotate-versionless", ["rotate"], async () => {
  const versionless = `${ctx.vaultUri}keys/${names.key}`;
  await acr.registries.beginUpdateAndWait(names.rg, names.reg, {
    encryption: { status: "enabled", keyVaultProperties: { keyIdentifier: versionless, identity: ctx.uai.clientId } },
  }, POLL);
  const kvp = (await acr.registries.get(names.rg, names.reg)).encryption.keyVaultProperties;
  eq(kvp.keyIdentifier, versionless, "keyIdentifier");
  eq(kvp.versionedKeyIdentifier, ctx.key2.id, "versionedKeyIdentifier (newest version)");
  eq(kvp.keyRotationEnabled, true, "keyRotationEnabled");
});

// Rotation to the registry's system-assigned identity: assign it with a
// PATCH, give its principal an access policy, rotate with identity "system".
await step("rotate-system-identity", ["rotate-versionless"], async () => {
  const upd = await acr.registries.beginUpdateAndWait(names.rg, names.reg, {
    identity: { type: "SystemAssigned, UserAssigned", userAssignedIdentities: { [ctx.uai.id]: {} } } }, POLL);
  eq(upd.identity?.type?.toLowerCase(), "systemassigned, userassigned", "identity.type");
  const sys = upd.identity.principalId;
  check(typeof sys === "string" && sys.length === 36, `system principalId ${sys}`);
  await kvm.vaults.updateAccessPolicy(names.rg, names.kv, "add", {
    properties: { accessPolicies: [{ tenantId, objectId: sys, permissions: { keys: ["get", "wrapKey", "unwrapKey"] } }] } });
  const reg = await acr.registries.beginUpdateAndWait(names.rg, names.reg, {
    encryption: { status: "enabled", keyVaultProperties: { keyIdentifier: ctx.key2.id, identity: "system" } } }, POLL);
  eq(reg.encryption?.keyVaultProperties?.identity, "system", "keyVaultProperties.identity");
  eq(reg.encryption.keyVaultProperties.versionedKeyIdentifier, ctx.key2.id, "versionedKeyIdentifier");
});

await step("rbac-vault", ["identity"], async () => {
  const v = await kvm.vaults.beginCreateOrUpdateAndWait(names.rg, names.kv2, {
    location,
    properties: {
      tenantId, sku: { family: "A", name: "standard" }, enableRbacAuthorization: true,
      accessPolicies: [],     // required unless createMode "recover", ignored under RBAC
      enableSoftDelete: true, softDeleteRetentionInDays: 7, enablePurgeProtection: true,
    },
  }, POLL);
  eq(v.properties?.enableRbacAuthorization, true, "enableRbacAuthorization");
  ctx.vault2 = v;
});

await step("role-assignment", ["rbac-vault"], async () => {
  const scope = ctx.vault2.id;
  const ra = await authz.roleAssignments.create(scope, randomUUID(), {
    roleDefinitionId: roleDef(CRYPTO_SERVICE_ENCRYPTION_USER), principalId: ctx.uai.principalId, principalType: "ServicePrincipal",
  });
  eq(ra.principalId, ctx.uai.principalId, "principalId");
  eq(ra.principalType, "ServicePrincipal", "principalType");
  check(ra.roleDefinitionId.toLowerCase().endsWith(`/roledefinitions/${CRYPTO_SERVICE_ENCRYPTION_USER}`), `roleDefinitionId ${ra.roleDefinitionId}`);
  eq(ra.scope.toLowerCase(), scope.toLowerCase(), "scope");
  // The job's own principal needs a data role to create the key (Owner has no data actions).
  await authz.roleAssignments.create(scope, randomUUID(), {
    roleDefinitionId: roleDef(CRYPTO_OFFICER), principalId: ctx.ownerOid, principalType: "ServicePrincipal",
  });
  const list = [];
  for await (const a of authz.roleAssignments.listForScope(scope)) list.push(a);
  check(list.some((a) => a.id === ra.id), "listForScope lacks the assignment");
});

await step("rbac-key", ["role-assignment"], async () => {
  ctx.keysRbac = new KeyClient(ctx.vault2.properties.vaultUri, credential);
  ctx.rbacKey = await ctx.keysRbac.createRsaKey(names.key, { keySize: 2048 });
  eq(ctx.rbacKey.key.n.length, 256, "modulus bytes (2048 bits)");
});

await step("registry-rbac", ["rbac-key"], async () => {
  const reg = await acr.registries.beginCreateAndWait(names.rg, names.reg2, registryBody("Premium", ctx.rbacKey.id), POLL);
  checkEncryption(reg, ctx.rbacKey.id, "poller result");
  checkEncryption(await acr.registries.get(names.rg, names.reg2), ctx.rbacKey.id, "get");
});

await step("wrap-unwrap", ["key-new-version"], async () => {
  const cc = new CryptographyClient(ctx.key2.id, credential);
  const cek = randomBytes(32);
  const w = await cc.wrapKey("RSA-OAEP-256", cek);    // remote: the SDK has no local RSA-OAEP-256
  eq(w.keyID, ctx.key2.id, "wrap keyID");
  eq(w.result.length, 256, "wrapped length");
  const u = await cc.unwrapKey("RSA-OAEP-256", w.result);
  eq(b64u(u.result), b64u(cek), "unwrap(wrap(cek))");
});

await step("local-wrap-emulator-unwrap", ["key-new-version"], async () => {
  const jwk = ctx.key2.key;
  const pub = createPublicKey({ key: { kty: "RSA", n: b64u(jwk.n), e: b64u(jwk.e) }, format: "jwk" });
  const cek = randomBytes(32);
  const wrapped = publicEncrypt({ key: pub, padding: C.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, cek);
  const cc = new CryptographyClient(ctx.key2.id, credential);
  const u = await cc.unwrapKey("RSA-OAEP-256", wrapped);
  eq(b64u(u.result), b64u(cek), "emulator unwrap of a locally wrapped key");
  // And the other way: RSA-OAEP (SHA-1) wrapped by node:crypto, unwrapped by the vault.
  const wrapped1 = publicEncrypt({ key: pub, padding: C.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha1" }, cek);
  const u1 = await cc.unwrapKey("RSA-OAEP", wrapped1);
  eq(b64u(u1.result), b64u(cek), "emulator RSA-OAEP unwrap of a locally wrapped key");
});

await step("delete-recover", ["key"], async () => {
  // An EC key: delete/recover do not depend on the key type, and the emulator makes EC keys
  // without an RSA generation (keeps the run, and the benchmark, about the clients).
  await ctx.keys.createEcKey(names.scratch, { curve: "P-256" });
  const del = await ctx.keys.beginDeleteKey(names.scratch, KV_POLL);
  const deleted = await del.pollUntilDone();
  eq(deleted.name, names.scratch, "deleted key name");
  eq(deleted.properties.recoveryId, `${ctx.vaultUri}deletedkeys/${names.scratch}`, "recoveryId");
  check(deleted.properties.deletedOn instanceof Date && deleted.properties.scheduledPurgeDate instanceof Date, "deletedOn / scheduledPurgeDate");
  const gone = await expectRestError(ctx.keys.getKey(names.scratch), 404);
  check(gone.endsWith("KeyNotFound"), `get after delete: ${gone}`);
  const rec = await ctx.keys.beginRecoverDeletedKey(names.scratch, KV_POLL);
  const back = await rec.pollUntilDone();
  eq(back.name, names.scratch, "recovered key name");
  const again = await ctx.keys.getKey(names.scratch);
  eq(again.id, back.id, "recovered key readable");
});

// What the registry itself does with the key: the job's user-assigned identity (token from IMDS on
// the "VM") gets, wraps and unwraps on both vaults — access policy (get, wrapKey, unwrapKey) and
// RBAC (Crypto Service Encryption User) — and is refused what it was not granted (sign).
await step("identity-wraps", ["token-managed-identity", "access-policy", "key-new-version", "rbac-key"], async () => {
  const mi = new ManagedIdentityCredential({ clientId: ctx.uai.clientId });
  const got = [];
  const refusal = {   // access-policy and RBAC denials read differently
    [ctx.key2.id]: /does not have keys sign permission on key vault/,
    [ctx.rbacKey.id]: /Caller is not authorized to perform action on resource/,
  };
  for (const kid of [ctx.key2.id, ctx.rbacKey.id]) {
    const cc = new CryptographyClient(kid, mi);
    const cek = randomBytes(32);
    const w = await cc.wrapKey("RSA-OAEP-256", cek);
    eq(b64u((await cc.unwrapKey("RSA-OAEP-256", w.result)).result), b64u(cek), `identity round trip on ${kid}`);
    got.push(await expectRestError(cc.sign("RS256", randomBytes(32)), 403, (code, e) => {
      eq(code, "Forbidden", "sign refused");
      check(refusal[kid].test(e.message), `refusal text: ${e.message.split("\n")[0]}`);
    }));
  }
  return `sign: ${got.join(", ")}`;
});

// A principal without any role or policy: ARM's and Key Vault's 403s as the SDK surfaces them.
await step("denied", ["key-new-version", "rbac-key", "token-certificate"], async () => {
  const no = new ClientSecretCredential(tenantId, ctx.seed.noaccess.app_id, ctx.seed.noaccess.client_secret, { authorityHost });
  const got = [];
  got.push(await expectRestError(new ContainerRegistryManagementClient(no, sub).registries.get(names.rg, names.reg), 403,
    (code) => eq(code, "AuthorizationFailed", "ARM code")));
  const cc = new CryptographyClient(ctx.key2.id, no);
  got.push(await expectRestError(cc.unwrapKey("RSA-OAEP-256", randomBytes(256)), 403,
    (code) => eq(code, "Forbidden", "access-policy vault code")));
  got.push(await expectRestError(new KeyClient(ctx.vault2.properties.vaultUri, no).getKey(names.key), 403,
    (code) => eq(code, "Forbidden", "RBAC vault code")));
  return got.join(", ");
});

// Throttling and a transient 503: the SDK's retry policies against the emulator's fault injection
// (429 + Retry-After on ARM, 503 on the vault); both calls must succeed after one retry.
await step("throttled-retry", ["registry-cmk", "key-new-version"], async () => {
  const seq = (await controlGet("/_emulator/health")).log_seq;
  const regPath = `/subscriptions/${sub}/resourceGroups/${names.rg}/providers/Microsoft.ContainerRegistry/registries/${names.reg}`;
  await control("POST", "/_emulator/faults", { rules: [
    { host: "management.azure.com", path: regPath, method: "GET", status: 429, retry_after: 1, count: 1 },
    { host: `${names.kv}.vault.azure.net`, path: `/keys/${names.key}`, method: "GET", status: 503, count: 1 },
  ] });
  try {
    const t0 = Date.now();
    await acr.registries.get(names.rg, names.reg);
    check(Date.now() - t0 >= 900, `the SDK did not wait for Retry-After: 1 (${Date.now() - t0} ms)`);
    await ctx.keys.getKey(names.key);
  } finally {
    await control("DELETE", "/_emulator/faults");
  }
  const log = await logSince(seq);
  const st = (host) => log.filter((e) => e.host === host && e.method === "GET" && !e.path.startsWith("/_emulator"))
    .map((e) => e.status).join(",");
  check(/^429,200/.test(st("management.azure.com")), `ARM statuses ${st("management.azure.com")}`);
  check(/^503,200/.test(st(`${names.kv}.vault.azure.net`)), `vault statuses ${st(`${names.kv}.vault.azure.net`)}`);
});

// Service rules: the SDK surfaces Azure's refusal as RestError(statusCode, code).
await step("rule-ec-key", ["access-policy"], async () => {
  const ec = await ctx.keys.createEcKey(names.ecKey, { curve: "P-256" });
  ctx.ecKeyId = ec.id;
  return expectRestError(acr.registries.beginCreateAndWait(names.rg, names.regEc, registryBody("Premium", ec.id), POLL), 400);
});

await step("rule-standard-sku", ["key"], async () =>
  expectRestError(acr.registries.beginCreateAndWait(names.rg, names.regStd, registryBody("Standard", ctx.key.id), POLL), 400));

await step("rule-cmk-existing", ["key", "identity"], async () => {
  const plain = await acr.registries.beginCreateAndWait(names.rg, names.regPlain, registryBody("Premium", null), POLL);
  eq(plain.encryption?.status, "disabled", "encryption of a registry without CMK");
  return expectRestError(acr.registries.beginUpdateAndWait(names.rg, names.regPlain, {
    encryption: { status: "enabled", keyVaultProperties: { keyIdentifier: ctx.key.id, identity: ctx.uai.clientId } },
  }, POLL), 400);
});

// A CMK registry stays CMK: encryption cannot be disabled, the SKU cannot leave Premium, content
// trust is refused (the last with the service's own code and typo'd text).
await step("rule-cmk-locked", ["registry-cmk"], async () => {
  const got = [];
  got.push(await expectRestError(acr.registries.beginUpdateAndWait(names.rg, names.reg,
    { encryption: { status: "disabled" } }, POLL), 400));
  got.push(await expectRestError(acr.registries.beginUpdateAndWait(names.rg, names.reg,
    { sku: { name: "Standard" } }, POLL), 400));
  got.push(await expectRestError(acr.registries.beginUpdateAndWait(names.rg, names.reg,
    { policies: { trustPolicy: { type: "Notary", status: "enabled" } } }, POLL), 400, (code, e) => {
    eq(code, "BlockedForEncryptionEnabledRegistry", "content trust code");
    check(/this feature 'ContenTrust' is currently not supported when encryption is enable/.test(e.message), e.message);
  }));
  eq((await acr.registries.get(names.rg, names.reg)).encryption?.status, "enabled", "still encrypted");
  return got.join(", ");
});

// The documented CMK template (examples/cmk-template.json: identity, access policy, registry) through
// @azure/arm-resourcesdeployments: the deployment LRO, its operations, the registry it made; and a
// failing one (EC key): DeploymentFailed with the registry's error nested as a JSON string.
await step("template-deployment", ["key-new-version", "rule-ec-key"], async () => {
  const template = JSON.parse(readFileSync(new URL("../examples/cmk-template.json", import.meta.url), "utf8"));
  const params = (reg, uai, kid) => ({ vault_name: { value: names.kv }, registry_name: { value: reg },
    identity_name: { value: uai }, kek_id: { value: kid } });
  const dep = await deployments.deployments.beginCreateOrUpdateAndWait(names.rg, "cmk",
    { properties: { mode: "Incremental", template, parameters: params(names.regTpl, `${names.uai}-tpl`, ctx.key2.id) } }, POLL);
  eq(dep.properties?.provisioningState, "Succeeded", "deployment provisioningState");
  const ops = [];
  for await (const o of deployments.deploymentOperations.list(names.rg, "cmk")) ops.push(o);
  const types = ops.map((o) => o.properties?.targetResource?.resourceType).sort().join(",");
  eq(types, "Microsoft.ContainerRegistry/registries,Microsoft.KeyVault/vaults/accessPolicies,Microsoft.ManagedIdentity/userAssignedIdentities", "operations");
  check(ops.every((o) => o.properties.provisioningState === "Succeeded"), "every operation Succeeded");
  eq((await deployments.deploymentOperations.get(names.rg, "cmk", ops[0].operationId)).operationId, ops[0].operationId, "operation get");
  const reg = await acr.registries.get(names.rg, names.regTpl);
  eq(reg.encryption?.status, "enabled", "registry from the template: encryption");
  eq(reg.encryption.keyVaultProperties.keyIdentifier, ctx.key2.id, "registry from the template: keyIdentifier");
  try {
    await deployments.deployments.beginCreateOrUpdateAndWait(names.rg, "cmk-ec",
      { properties: { mode: "Incremental", template, parameters: params(names.regTplEc, `${names.uai}-tpl2`, ctx.ecKeyId) } }, POLL);
    throw new Error("the EC deployment succeeded");
  } catch (e) {
    check(/DeploymentFailed/.test(e.message), `failed deployment error: ${describe(e)}`);
  }
  const failed = await deployments.deployments.get(names.rg, "cmk-ec");
  eq(failed.properties?.provisioningState, "Failed", "failed deployment provisioningState");
  eq(failed.properties.error?.code, "DeploymentFailed", "error.code");
  const inner = failed.properties.error.details?.[0];
  check(inner && /KeyTypeNotSupported/.test(JSON.parse(inner.message).error?.code || ""),
    `details[0].message (a JSON string): ${JSON.stringify(inner)}`);
  return `${ops.length} operations; failed one: DeploymentFailed / ${inner.code}`;
});

// The job's core in the two sovereign clouds: their authorities, ARM endpoints and audiences,
// vault and registry suffixes, and the Key Vault challenge (resource https://vault.azure.cn /
// https://vault.usgovcloudapi.net) that the SDK verifies against the vault host.
await step("sovereign-clouds", ["token"], async () => {
  const clouds = [
    { name: "china", auth: AzureAuthorityHosts.AzureChina, arm: "https://management.chinacloudapi.cn",
      loc: "chinanorth3", vault: "vault.azure.cn", acr: "azurecr.cn" },
    { name: "usgov", auth: AzureAuthorityHosts.AzureGovernment, arm: "https://management.usgovcloudapi.net",
      loc: "usgovvirginia", vault: "vault.usgovcloudapi.net", acr: "azurecr.us" },
  ];
  for (const c of clouds) {
    const cred = new ClientSecretCredential(tenantId, clientId, clientSecret, { authorityHost: c.auth });
    eq(jwtClaims((await cred.getToken(`${c.arm}/.default`)).token).aud, c.arm, `${c.name} ARM audience`);
    const o = { endpoint: c.arm, credentialScopes: [`${c.arm}/.default`] };
    const rg = `${names.rg}-${c.name}`;
    const kv = `conf${c.name}${tag}`;
    await new ResourceManagementClient(cred, sub, o).resourceGroups.createOrUpdate(rg, { location: c.loc });
    const uai = await new ManagedServiceIdentityClient(cred, sub, o).userAssignedIdentities.createOrUpdate(rg, "uai", { location: c.loc });
    const vault = await new KeyVaultManagementClient(cred, sub, o).vaults.beginCreateOrUpdateAndWait(rg, kv, {
      location: c.loc,
      properties: { tenantId, sku: { family: "A", name: "standard" }, enablePurgeProtection: true, accessPolicies: [
        { tenantId, objectId: ctx.ownerOid, permissions: { keys: ["get", "create", "wrapKey", "unwrapKey"] } },
        { tenantId, objectId: uai.principalId, permissions: { keys: ["get", "wrapKey", "unwrapKey"] } }] },
    }, POLL);
    eq(vault.properties.vaultUri, `https://${kv}.${c.vault}/`, `${c.name} vaultUri`);
    const key = await new KeyClient(vault.properties.vaultUri, cred).createRsaKey("cmk");
    const cc = new CryptographyClient(key.id, cred);
    const cek = randomBytes(32);
    eq(b64u((await cc.unwrapKey("RSA-OAEP-256", (await cc.wrapKey("RSA-OAEP-256", cek)).result)).result), b64u(cek),
      `${c.name} wrap/unwrap`);
    const reg = await new ContainerRegistryManagementClient(cred, sub, o).registries.beginCreateAndWait(rg, `${kv}reg`, {
      location: c.loc, sku: { name: "Premium" }, identity: { type: "UserAssigned", userAssignedIdentities: { [uai.id]: {} } },
      encryption: { status: "enabled", keyVaultProperties: { keyIdentifier: key.id, identity: uai.clientId } },
    }, POLL);
    eq(reg.loginServer, `${kv}reg.${c.acr}`, `${c.name} loginServer`);
    eq(reg.encryption?.keyVaultProperties?.versionedKeyIdentifier, key.id, `${c.name} versionedKeyIdentifier`);
  }
});

await step("emulator-health", [], async () => {
  const h = await controlGet("/_emulator/health");
  eq(h.internal_errors, 0, "internal_errors");
});

console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed ? 1 : 0;
