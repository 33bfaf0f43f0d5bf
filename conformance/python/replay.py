"""Replays recorded Azure traffic (conformance/recorded/*.json) against a running emulator.

Each file keeps a few exchanges of one Azure CLI test recording (source repository, path and
commit inside). Every kept exchange is sent again, through the emulator's HTTPS proxy, and its
answer compared with Azure's recorded one:
  - the status code;
  - the long-running-operation and challenge headers the recording has (Azure-AsyncOperation,
    Location, WWW-Authenticate), after mapping recorded ids to the emulator's;
  - the body's shape: every JSON path with its type, both ways (a field Azure sends and the
    emulator does not, or the other way round, is a difference);
  - enum-like values (provisioningState, status, type, sku, kty, recoveryLevel, ...).
Ids the emulator makes differently (principal ids, key versions, operation ids) are learnt from
the answers and substituted into later requests. An exchange may list fields to ignore, each
with its reason, and headers a newer recording shows Azure has since changed
(`superseded_headers`, each naming the newer recording); nothing else is tolerated.

Environment: the emulator's exports (`azcmk emulator start`, tools included: HTTPS_PROXY,
REQUESTS_CA_BUNDLE, AZURE_*). Prints one line per exchange, then
"replay: N kept, N matched, N differ, N left out"; exit 1 when one differs.
"""
import glob
import json
import os
import re
import sys

from emu_client import Emulator

ENUMS = {"provisioningState", "status", "type", "kty", "recoveryLevel", "tier", "defaultAction",
         "publicNetworkAccess", "zoneRedundancy", "networkRuleBypassOptions", "keyRotationEnabled",
         "enableSoftDelete", "enablePurgeProtection", "enableRbacAuthorization", "code", "family"}
ID_LIKE = re.compile(r"^(https?://|/subscriptions/|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-)|[0-9a-f]{32}$")
KEYED_MAPS = {"userAssignedIdentities"}  # object keys are resource ids: compared as "*"


class Replay:
    def __init__(self):
        self.emu = Emulator()
        self.tenant, self.sub = self.emu.tenant, self.emu.sub
        self.http = self.emu.http
        self.owner_oid = self.emu.control("GET", "seed")["owner"]["object_id"]

    def token(self, kind):
        return self.emu.token(kind)

    # ------------------------------------------------------------ id mapping

    def sub_text(self, s):
        for old in sorted(self.map, key=len, reverse=True):
            s = s.replace(old, self.map[old])
        return s

    def learn(self, rec, act):
        """Recorded value -> the emulator's, for ids found at the same place in both bodies."""
        if isinstance(rec, dict) and isinstance(act, dict):
            for k, v in rec.items():
                if k in act:
                    self.learn(v, act[k])
            if len(rec) == 1 and len(act) == 1:  # a map keyed by ids
                (rk, rv), (ak, av) = next(iter(rec.items())), next(iter(act.items()))
                if rk != ak and ID_LIKE.search(rk):
                    self.map[rk] = ak
                    self.learn(rv, av)
        elif isinstance(rec, list) and isinstance(act, list):
            for a, b in zip(rec, act):
                self.learn(a, b)
        elif isinstance(rec, str) and isinstance(act, str) and rec != act and ID_LIKE.search(rec):
            mapped = self.sub_text(rec)
            if mapped != act:
                self.map[rec] = act

    # ------------------------------------------------------------ comparing

    def shape(self, v, path="", out=None):
        out = {} if out is None else out
        if isinstance(v, dict):
            out[path or "$"] = "object"
            keyed = path.rsplit(".", 1)[-1] in KEYED_MAPS
            for k, x in v.items():
                self.shape(x, "%s.%s" % (path, "*" if keyed else k), out)
        elif isinstance(v, list):
            out[path or "$"] = "array"
            for x in v:
                self.shape(x, path + "[]", out)
        else:
            out[path or "$"] = {bool: "boolean", int: "number", float: "number", str: "string",
                                type(None): "null"}[type(v)]
        return out

    def enums(self, v, path="", out=None):
        out = {} if out is None else out
        if isinstance(v, dict):
            keyed = path.rsplit(".", 1)[-1] in KEYED_MAPS
            for k, x in v.items():
                p = "%s.%s" % (path, "*" if keyed else k)
                if k in ENUMS and not isinstance(x, (dict, list)):
                    out[p] = x
                self.enums(x, p, out)
        elif isinstance(v, list):
            for x in v:
                self.enums(x, path + "[]", out)
        return out

    @staticmethod
    def norm_url(u):
        u = re.sub(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", "{guid}", u)
        # an operation's own id is opaque (Azure's are base64 or GUIDs): the path around it is compared
        u = re.sub(r"/(operationresults|operationstatuses|operations|asyncoperations)/[^/?]+", r"/\1/{op}", u,
                   flags=re.I)
        return u.lower()

    def compare(self, ex, status, headers, body):
        diffs = []
        ignore = {i["path"] for i in ex.get("ignore", [])}
        if status != ex["status"]:
            why = body.get("error") if isinstance(body, dict) else None
            diffs.append("status %s, Azure %s%s" % (status, ex["status"], (": %s" % json.dumps(why)) if why else ""))
        superseded = {i["name"] for i in ex.get("superseded_headers", [])}
        for h, want in ex.get("headers", {}).items():
            if h in superseded:
                continue
            got = headers.get(h)
            if got is None:
                diffs.append("header %s missing" % h)
            elif self.norm_url(self.sub_text(want)) != self.norm_url(got):
                diffs.append("header %s: %s, Azure %s" % (h, got, self.sub_text(want)))
        rec = ex.get("response")
        if rec is None:
            if body not in (None, ""):
                diffs.append("body present, Azure sent none")
            return diffs
        if not isinstance(body, (dict, list)):
            return diffs + ["body is not JSON: %r" % (body,)[:200]]
        want, got = self.shape(rec), self.shape(body)
        for p in sorted(set(want) | set(got)):
            if any(p == i or p.startswith(i + ".") or p.startswith(i + "[") for i in ignore):
                continue
            if p not in got:
                diffs.append("missing %s (%s)" % (p, want[p]))
            elif p not in want:
                diffs.append("extra %s (%s)" % (p, got[p]))
            elif want[p] != got[p] and "null" not in (want[p], got[p]):
                diffs.append("%s is %s, Azure %s" % (p, got[p], want[p]))
        we, ge = self.enums(rec), self.enums(body)
        for p, v in we.items():
            if p in ge and p not in ignore and ge[p] != v and not (isinstance(v, str) and ID_LIKE.search(v)):
                diffs.append("%s = %r, Azure %r" % (p, ge[p], v))
        return diffs

    # ------------------------------------------------------------ running

    def send(self, method, url, body=None, token="arm"):
        headers = {}
        if token:
            headers["Authorization"] = "Bearer " + self.token(token)
        data = None
        if body is not None:
            data = self.sub_text(json.dumps(body))
            headers["Content-Type"] = "application/json"
        r = self.http.request(method, self.sub_text(url), data=data, headers=headers)
        try:
            parsed = r.json() if r.content else None
        except ValueError:
            parsed = r.text
        return r.status_code, {k.lower(): v for k, v in r.headers.items()}, parsed

    def setup(self, doc):
        for step in doc.get("setup", []):
            if "resource_group" in step:
                st, _, b = self.send("PUT", "https://management.azure.com/subscriptions/00000000-0000-0000-0000-"
                                     "000000000000/resourcegroups/%s?api-version=2021-04-01" % step["resource_group"],
                                     {"location": step["location"]})
            else:
                st, _, b = self.send("PUT", "https://management.azure.com%s?api-version=2021-10-01" % step["vault"],
                                     step["body"])
            if st not in (200, 201):
                raise RuntimeError("setup %s failed: %s %s" % (step, st, b))

    def run_file(self, path):
        doc = json.load(open(path))
        self.map = {"00000000-0000-0000-0000-000000000000": self.sub}
        # the recording's tenant and signed-in principal are the seeded tenant and owner here
        for rid, who in doc.get("principals", {}).items():
            self.map[rid] = {"owner": self.owner_oid, "tenant": self.tenant}.get(who, who)
        src = doc["source"]
        name = os.path.basename(path)
        print("# %s: %s/%s @ %s" % (name, src["repo"], src["path"], src["commit"][:12]))
        self.setup(doc)
        kept = matched = 0
        for ex in doc["exchanges"]:
            token = ex.get("token", "arm")
            status, headers, body = self.send(ex["method"], ex["url"], ex.get("body"), token)
            if ex.get("skip_compare"):
                if status >= 400:
                    raise RuntimeError("%s: %s %s" % (ex["name"], status, body))
                continue
            kept += 1
            diffs = self.compare(ex, status, headers, body)
            for h, want in ex.get("headers", {}).items():  # later requests poll the emulator's URL
                if h in headers and h != "www-authenticate":
                    self.map[want] = headers[h]
            if ex.get("response") is not None and isinstance(body, (dict, list)):
                self.learn(ex["response"], body)
            if diffs:
                print("DIFF %s: %s\n  %s" % (name, ex["name"], "\n  ".join(diffs)))
            else:
                matched += 1
                print("ok   %s: %s" % (name, ex["name"]))
        for lo in doc.get("left_out", []):
            print("left out  %s: %s -- %s" % (name, lo["name"], lo["reason"]))
        return kept, matched, len(doc.get("left_out", []))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    files = sys.argv[1:] or sorted(glob.glob(os.path.join(here, "..", "recorded", "*.json")))
    rp = Replay()
    kept = matched = left = 0
    for f in files:
        k, m, lo = rp.run_file(f)
        kept, matched, left = kept + k, matched + m, left + lo
    print("replay: %d kept, %d matched, %d differ, %d left out" % (kept, matched, kept - matched, left))
    sys.exit(0 if kept == matched else 1)


if __name__ == "__main__":
    main()
