"""The emulator as the conformance scripts reach it: through its HTTPS proxy (HTTPS_PROXY and
REQUESTS_CA_BUNDLE from `azcmk emulator start`), with the seeded owner's client-secret tokens.
Used to check, independently of the client under test, the state each step leaves."""
import os
import sys

import requests

ARM = "https://management.azure.com"


def env(name):
    v = os.environ.get(name)
    if not v:
        sys.exit("%s is not set: eval \"$(azcmk emulator start)\" first" % name)
    return v


class Emulator:
    def __init__(self):
        self.tenant = env("AZURE_TENANT_ID")
        self.sub = env("AZURE_SUBSCRIPTION_ID")
        env("HTTPS_PROXY")
        self.http = requests.Session()
        self.tokens = {}

    def token(self, kind="arm"):
        if kind not in self.tokens:
            scope = {"arm": ARM, "vault": "https://vault.azure.net"}[kind] + "/.default"
            r = self.http.post("https://login.microsoftonline.com/%s/oauth2/v2.0/token" % self.tenant, data={
                "grant_type": "client_credentials", "client_id": env("AZURE_CLIENT_ID"),
                "client_secret": env("AZURE_CLIENT_SECRET"), "scope": scope})
            r.raise_for_status()
            self.tokens[kind] = r.json()["access_token"]
        return self.tokens[kind]

    def request(self, method, url, body=None, token="arm", headers=None):
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + self.token(token)
        return self.http.request(method, url, json=body, headers=h)

    def arm(self, method, path, api, body=None):
        """ARM call by path; returns (status, parsed JSON or None)."""
        sep = "&" if "?" in path else "?"
        r = self.request(method, ARM + path + sep + "api-version=" + api, body)
        try:
            return r.status_code, (r.json() if r.content else None)
        except ValueError:
            return r.status_code, r.text

    def rg_path(self, rg):
        return "/subscriptions/%s/resourceGroups/%s" % (self.sub, rg)

    def control(self, method, path, body=None):
        r = self.http.request(method, ARM + "/_emulator/" + path, json=body)
        return r.json() if r.content else None

    def health(self):
        return self.control("GET", "health")
