// The JS SDK as any user runs it against the emulator: only the variables `azcmk emulator start`
// prints (HTTPS_PROXY, NODE_EXTRA_CA_CERTS, AZURE_*), no preload (no loopback.cjs, no port
// remap): @azure/core-rest-pipeline's proxy policy tunnels through the emulator's CONNECT proxy,
// TLS is verified with the real host names. A host the emulator does not serve is refused.
// Prints "ok <step>" / "FAIL <step>: ..." and "N passed, N failed".
import { ClientSecretCredential } from "@azure/identity";
import { ResourceManagementClient } from "@azure/arm-resources";
import { KeyVaultManagementClient } from "@azure/arm-keyvault";
import { KeyClient } from "@azure/keyvault-keys";

const env = process.env;
const cred = new ClientSecretCredential(env.AZURE_TENANT_ID, env.AZURE_CLIENT_ID, env.AZURE_CLIENT_SECRET);
const sub = env.AZURE_SUBSCRIPTION_ID;
const rg = "js-proxy-rg";
const vault = "jsproxykv" + Date.now().toString(16).slice(-5);
let passed = 0, failed = 0;

async function step(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.statusCode ?? ""} ${e.code ?? ""} ${String(e.message).slice(0, 300)}`);
  }
}
function check(cond, what) { if (!cond) throw new Error(what); }

await step("variables (no preload, proxy and CA from azcmk emulator start)", async () => {
  check(env.HTTPS_PROXY && env.NODE_EXTRA_CA_CERTS && !process.execArgv.length, "HTTPS_PROXY/NODE_EXTRA_CA_CERTS");
});
await step("token through the proxy", async () => {
  const t = await cred.getToken("https://management.azure.com/.default");
  check(t && t.token.split(".").length === 3, "token");
});
await step("resource group (arm-resources)", async () => {
  const rm = new ResourceManagementClient(cred, sub);
  await rm.resourceGroups.createOrUpdate(rg, { location: "westus" });
  check((await rm.resourceGroups.get(rg)).location === "westus", "location");
});
await step("vault and key (arm-keyvault, keyvault-keys with challenge verification)", async () => {
  const kv = new KeyVaultManagementClient(cred, sub);
  const oid = JSON.parse(Buffer.from((await cred.getToken("https://management.azure.com/.default")).token
    .split(".")[1], "base64url")).oid;
  await kv.vaults.beginCreateOrUpdateAndWait(rg, vault, { location: "westus", properties: {
    tenantId: env.AZURE_TENANT_ID, sku: { family: "A", name: "standard" },
    accessPolicies: [{ tenantId: env.AZURE_TENANT_ID, objectId: oid, permissions: { keys: ["all"] } }] } });
  const key = await new KeyClient(`https://${vault}.vault.azure.net`, cred).createRsaKey("jskey");
  check(key.id.startsWith(`https://${vault}.vault.azure.net/keys/jskey/`), key.id);
});
await step("a host that is not emulated is refused by the proxy (403)", async () => {
  // the SDK's own pipeline (its proxy policy reads HTTPS_PROXY) pointed at a host the emulator does not serve
  const other = new ResourceManagementClient(cred, sub, { endpoint: "https://example.com",
    credentialScopes: ["https://management.azure.com/.default"] });
  let err;
  try { await other.resourceGroups.get(rg); } catch (e) { err = e; }
  check(err && (err.statusCode === 403 || /403/.test(String(err.message))),
    `not refused: ${err && err.statusCode} ${err && err.message}`);
});
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
