"""Sends every example of docs/openapi.yaml to a running Strata and checks each answer against
the description: the status the example names (`x-status`, else the operation's first 2xx), a
documented response for it, and a body that matches the response's schema (JSON Schema 2020-12,
as OpenAPI 3.1 uses). Operations without a request body are sent once with their parameters'
examples. Prints one line per request; exits 1 if any answer does not match.

    python3 openapi_check.py HOST:PORT SPEC.yaml

Needs PyYAML, jsonschema and openapi-spec-validator (scripts/test-requirements.txt).
"""
import http.client
import json
import sys
import urllib.parse

import jsonschema
import yaml
from openapi_spec_validator import validate

METHODS = ("get", "post", "put", "delete", "head", "patch")


def resolve(spec, node):
    """Follows a local `$ref` (`#/components/...`) to what it names."""
    while isinstance(node, dict) and "$ref" in node:
        target = spec
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def requests_of(spec, path, method, operation):
    """(name, query string, content type, body bytes, expected status) for each example."""
    query = {}
    for parameter in operation.get("parameters", []):
        parameter = resolve(spec, parameter)
        if parameter["in"] == "query" and "example" in parameter:
            query[parameter["name"]] = parameter["example"]
    target = path + ("?" + urllib.parse.urlencode(query) if query else "")
    success = sorted(code for code in operation["responses"] if code.startswith("2"))
    body = resolve(spec, operation.get("requestBody"))
    if not body:
        yield "no body", target, None, None, int(success[0])
        return
    for media, content in body["content"].items():
        for name, example in content.get("examples", {}).items():
            value = example["value"]
            data = value if isinstance(value, str) else json.dumps(value)
            status = example.get("x-status", int(success[0]))
            yield name, target, media, data.encode(), status


def check_body(spec, response, content_type, text):
    """The problems of `text` against the documented response, as strings."""
    content = response.get("content")
    if not content:
        return [] if not text else [f"no body documented, got {text[:200]!r}"]
    media = next((m for m in content if content_type.startswith(m)), None)
    if media is None:
        return [f"Content-Type {content_type!r} is not one of {sorted(content)}"]
    schema = dict(content[media].get("schema", {}))
    schema["components"] = spec["components"]
    instance = text
    if media == "application/json":
        try:
            instance = json.loads(text)
        except ValueError as error:
            return [f"not JSON: {error}: {text[:200]!r}"]
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]


def main():
    addr, spec_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as file:
        spec = yaml.safe_load(file)
    validate(spec)
    host, port = addr.rsplit(":", 1)
    failures, sent = 0, 0
    for path, item in spec["paths"].items():
        for method in METHODS:
            operation = item.get(method)
            if not operation:
                continue
            for name, target, media, body, expected in requests_of(spec, path, method, operation):
                connection = http.client.HTTPConnection(host, int(port), timeout=30)
                headers = {"Content-Type": media} if media else {}
                connection.request(method.upper(), target, body=body, headers=headers)
                answer = connection.getresponse()
                text = answer.read().decode("utf-8", "replace")
                connection.close()
                sent += 1
                problems = []
                if answer.status != expected:
                    problems.append(f"status {answer.status}, the example says {expected}")
                response = operation["responses"].get(str(answer.status))
                if response is None:
                    problems.append(f"status {answer.status} is not documented")
                else:
                    content_type = answer.getheader("Content-Type", "")
                    problems += check_body(spec, resolve(spec, response), content_type, text)
                verdict = "ok" if not problems else "MISMATCH"
                print(f"{verdict}: {method.upper()} {target} [{name}] -> {answer.status}")
                for problem in problems:
                    print(f"    {problem}")
                failures += bool(problems)
    print(f"{sent} requests, {failures} mismatches")
    sys.exit(1 if failures or not sent else 0)


if __name__ == "__main__":
    main()
