# shellcheck shell=bash
# The CMK story against the emulator, sourced by scripts/demo.sh (which started the emulator,
# exported its environment and defined `say` and `az`). Everything here is what a user types.
port=$(echo "$AZCMK_CONNECT_TO" | sed -E 's/^:443:127\.0\.0\.1:([0-9]+).*/\1/')
emu() { curl -s --connect-to "::127.0.0.1:$port" --cacert "$AZCMK_CA_FILE" "$@"; }
# rehearsal pace: long-running operations finish at their first poll
emu -X POST https://management.azure.com/_emulator/config -d '{"lro":{"polls":1,"seconds":0,"retry_after":0}}' \
  >/dev/null

say "1. set up: resource group, identity, Key Vault (soft delete + purge protection), RSA key, Premium registry"
az setup -g demo-rg -n demoreg01 --vault demo-kv-01 -l westus

say "2. again: idempotent, nothing changes"
az setup -g demo-rg -n demoreg01 --vault demo-kv-01 -l westus 2>/dev/null

say "3. show the encryption (as 'az acr encryption show') and the key version in use"
az show -n demoreg01 --probe
echo "\$ azcmk show -n demoreg01 -o json   # properties.encryption + an 'azcmk' object"
./bin/azcmk show -n demoreg01 -o json | sed -n '/"keyVaultProperties"/,$p'

say "4. rotate to a new key version (versioned key id: the registry is updated and checked)"
az rotate -n demoreg01

say "5. revoke: without --yes it only says what it would do"
az revoke -n demoreg01 || echo "(exit status $?: nothing was changed)"

say "6. revoke --yes: the registry can no longer use its key"
az revoke -n demoreg01 --yes
echo "\$ curl https://demoreg01.azurecr.io/v2/"
emu -o /dev/null -w "HTTP %{http_code}\n" https://demoreg01.azurecr.io/v2/
emu https://demoreg01.azurecr.io/v2/ | head -c 300; echo
say "6b. the doctor names the problem (exit status 1: broken)"
az doctor -n demoreg01 || echo "(exit status $?)"

say "7. restore the access: the registry serves again"
az restore -n demoreg01
emu -o /dev/null -w "\$ curl https://demoreg01.azurecr.io/v2/ -> HTTP %{http_code} (401 = serving, asks for login)\n" \
  https://demoreg01.azurecr.io/v2/

say "7b. the doctor again: healthy (exit status 0)"
az doctor -n demoreg01

say "8. show again"
az show -n demoreg01 --probe
