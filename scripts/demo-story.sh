# shellcheck shell=bash
# The CMK story against the emulator, sourced by scripts/demo.sh (which started the emulator,
# exported its environment and defined `say` and `az`). Everything here is what a user types.
port=$(echo "$AZCMK_CONNECT_TO" | sed -E 's/^:443:127\.0\.0\.1:([0-9]+).*/\1/')
emu() { curl -s --connect-to "::127.0.0.1:$port" --cacert "$AZCMK_CA_FILE" "$@"; }
# rehearsal pace: long-running operations finish at their first poll
emu -X POST https://management.azure.com/_emulator/config -d '{"lro":{"polls":1,"seconds":0,"retry_after":0}}' \
  >/dev/null

# The registry's data plane with curl: ACR's token flow (Entra ID token -> /oauth2/exchange -> refresh
# token -> /oauth2/token -> access token for one repository), then the OCI API.
REG=demoreg01.azurecr.io
field() { sed -E 's/.*"'"$1"'":"([^"]+)".*/\1/'; }
acr_token() {
  local aad refresh
  aad=$(emu "https://login.microsoftonline.com/$AZURE_TENANT_ID/oauth2/v2.0/token" -d grant_type=client_credentials \
    -d "client_id=$AZURE_CLIENT_ID" --data-urlencode "client_secret=$AZURE_CLIENT_SECRET" \
    -d scope=https://management.azure.com/.default | field access_token)
  refresh=$(emu "https://$REG/oauth2/exchange" -d grant_type=access_token -d "service=$REG" \
    -d "access_token=$aad" | field refresh_token)
  emu "https://$REG/oauth2/token" -d grant_type=refresh_token -d "service=$REG" --data-urlencode "scope=$1" \
    -d "refresh_token=$refresh" | field access_token
}
push_hello() {
  local tok layer config ld cd manifest
  tok=$(acr_token "repository:hello:pull,push")
  layer="hello, encrypted with the customer's key"; config='{"architecture":"amd64","os":"linux"}'
  ld="sha256:$(printf %s "$layer" | sha256sum | cut -d' ' -f1)"; cd="sha256:$(printf %s "$config" | sha256sum | cut -d' ' -f1)"
  emu -o /dev/null -X POST -H "Authorization: Bearer $tok" --data-binary "$layer" "https://$REG/v2/hello/blobs/uploads/?digest=$ld"
  emu -o /dev/null -X POST -H "Authorization: Bearer $tok" --data-binary "$config" "https://$REG/v2/hello/blobs/uploads/?digest=$cd"
  manifest='{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":'
  manifest+='"application/vnd.oci.image.config.v1+json","digest":"'$cd'","size":'${#config}'},"layers":[{"mediaType":'
  manifest+='"application/vnd.oci.image.layer.v1.tar","digest":"'$ld'","size":'${#layer}'}]}'
  emu -o /dev/null -w "PUT /v2/hello/manifests/v1 -> HTTP %{http_code}\n" -X PUT -H "Authorization: Bearer $tok" \
    -H "Content-Type: application/vnd.oci.image.manifest.v1+json" --data-binary "$manifest" "https://$REG/v2/hello/manifests/v1"
  echo "$ld" > "$DIR/hello.layer"
}
pull_hello() {  # the layer's bytes, and which key version wraps the registry's content key
  local tok
  tok=$(acr_token "repository:hello:pull")
  emu -D - -H "Authorization: Bearer $tok" "https://$REG/v2/hello/blobs/$(cat "$DIR/hello.layer")" |
    grep -iE '^(HTTP/|x-emulator-content-key)|^hello|"message"' | tr -d '\r'; echo
}

say "1. set up: resource group, identity, Key Vault (soft delete + purge protection), RSA key, Premium registry"
az setup -g demo-rg -n demoreg01 --vault demo-kv-01 -l westus

say "2. again: idempotent, nothing changes"
az setup -g demo-rg -n demoreg01 --vault demo-kv-01 -l westus 2>/dev/null

say "3. show the encryption (as 'az acr encryption show') and the key version in use"
az show -n demoreg01 --probe
echo "\$ azcmk show -n demoreg01 -o json   # properties.encryption + an 'azcmk' object"
./bin/azcmk show -n demoreg01 -o json | sed -n '/"keyVaultProperties"/,$p'

say "3b. push a tiny image over the OCI API (curl + ACR's token flow), pull its layer back"
push_hello
echo "\$ curl -H 'Authorization: Bearer <token>' https://$REG/v2/hello/blobs/<layer digest>"
pull_hello

say "4. rotate to a new key version (versioned key id: the registry is updated and checked)"
az rotate -n demoreg01
echo "(the content key is re-wrapped under the new version:)"
pull_hello

say "5. revoke: without --yes it only says what it would do"
az revoke -n demoreg01 || echo "(exit status $?: nothing was changed)"

say "6. revoke --yes: the registry can no longer use its key"
az revoke -n demoreg01 --yes
echo "\$ curl https://demoreg01.azurecr.io/v2/"
emu -o /dev/null -w "HTTP %{http_code}\n" https://demoreg01.azurecr.io/v2/
emu https://demoreg01.azurecr.io/v2/ | head -c 300; echo
echo "(a pull of the image fails: the content key cannot be unwrapped)"
pull_hello
echo "(azcmk verify pushes and pulls a test artifact as you: both directions fail, exit status 1)"
az verify -n demoreg01 || echo "(exit status $?)"
say "6b. the doctor names what happened: REVOKED, by whom and when (exit status 1: it does not serve)"
az doctor -n demoreg01 || echo "(exit status $?)"

say "7. restore the access: the registry serves again"
az restore -n demoreg01
emu -o /dev/null -w "\$ curl https://demoreg01.azurecr.io/v2/ -> HTTP %{http_code} (401 = serving, asks for login)\n" \
  https://demoreg01.azurecr.io/v2/
echo "(the same layer pulls again)"
pull_hello
echo "(and azcmk verify proves both directions again, naming the key version that wraps the content)"
az verify -n demoreg01

say "7b. the doctor again: healthy (exit status 0)"
az doctor -n demoreg01

say "8. show again"
az show -n demoreg01 --probe
