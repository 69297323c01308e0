// tests/vectors/protocol.json re-derived by a second implementation: ethers v6 and node:crypto.
//
//     node --test tests/js/vectors.test.mjs
//
// What a Node.js member client needs to get right is checked here with no Python in the loop:
// the deployment's addresses (ethers.getCreateAddress), every EIP-712 domain separator, struct
// hash and digest (ethers.TypedDataEncoder), every signed action's signer and the signature rule
// the contracts apply (v 27 or 28, low s: every refused_signatures entry refused), the receipt
// id (the receipt's EIP-712 digest), the request-signing message and its EIP-191 signer
// (ethers.verifyMessage), the content hashes (RFC 6962 over 1 MiB pieces, node:crypto), the
// metadata, terms and reason hashes and the signing key file. The vectors hold 256-bit integers, so
// the file is read with a small BigInt-aware JSON parser: JSON.parse would round them.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import {
  Signature,
  TypedDataEncoder,
  Wallet,
  getCreateAddress,
  hashMessage,
  recoverAddress,
  toUtf8Bytes,
  verifyMessage,
  verifyTypedData,
} from "ethers";

const VECTORS = fileURLToPath(new URL("../vectors/protocol.json", import.meta.url));

/** JSON.parse, except that integers beyond Number.MAX_SAFE_INTEGER become BigInt. */
export function parseExact(text) {
  let i = 0;
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i])) i++;
  };
  const value = () => {
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const obj = {};
      ws();
      if (text[i] === "}") {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        const key = string();
        ws();
        assert.equal(text[i++], ":");
        obj[key] = value();
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        assert.equal(text[i++], "}");
        return obj;
      }
    }
    if (c === "[") {
      i++;
      const arr = [];
      ws();
      if (text[i] === "]") {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value());
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        assert.equal(text[i++], "]");
        return arr;
      }
    }
    if (c === '"') return string();
    for (const [word, v] of [
      ["true", true],
      ["false", false],
      ["null", null],
    ]) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    const match = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    assert.ok(match, `bad JSON at ${i}`);
    i += match[0].length;
    if (match[2] || match[3]) return Number(match[0]);
    const n = BigInt(match[0]);
    return n <= BigInt(Number.MAX_SAFE_INTEGER) && n >= -BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(n)
      : n;
  };
  const string = () => {
    assert.equal(text[i], '"');
    let j = i + 1;
    while (text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
    const s = JSON.parse(text.slice(i, j + 1));
    i = j + 1;
    return s;
  };
  const result = value();
  ws();
  assert.equal(i, text.length);
  return result;
}

const V = parseExact(readFileSync(VECTORS, "utf8"));
const sha256 = (data) => createHash("sha256").update(data).digest();
const hex = (buf) => "0x" + Buffer.from(buf).toString("hex");
const unhex = (s) => Buffer.from(s.slice(2), "hex");

/** The secp256k1 group order. */
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

/** What OpenZeppelin's ECDSA.recover (and the broker) accept: 65 bytes, v 27/28, 0 < r < n,
 * 0 < s <= n/2. ethers alone is not enough: it accepts v 0 and 1. */
function canonicalSignature(signature) {
  const bytes = unhex(signature);
  if (bytes.length !== 65) return false;
  const r = BigInt(hex(bytes.subarray(0, 32)));
  const s = BigInt(hex(bytes.subarray(32, 64)));
  return (bytes[64] === 27 || bytes[64] === 28) && r > 0n && r < N && s > 0n && s <= N / 2n;
}

/** The EIP-712 types ethers needs for one action (EIP712Domain comes from the domain). */
const typesOf = (primary) => ({ [primary]: V.eip712.types[primary].fields });
const actionNamed = (name) => V.actions.find((a) => a.name === name);

test("big integers survive parsing", () => {
  const request = V.actions.find((a) => a.name === "request");
  assert.equal(typeof request.message.nonce, "bigint");
  assert.ok(request.message.nonce >= 2n ** 64n);
  // what plain JSON.parse would have made of it: a double, no longer the nonce that was signed
  assert.notEqual(BigInt(JSON.parse(`[${request.message.nonce}]`)[0]), request.message.nonce);
});

test("deployment: CREATE addresses of the deployer (the broker key), two operator keys", () => {
  const d = V.deployment;
  assert.equal(d.deployer, d.broker);
  assert.notEqual(d.admin, d.broker);
  assert.equal(new Wallet(V.keys.signing.operator.private_key).address, d.admin);
  assert.equal(new Wallet(V.keys.signing.broker.private_key).address, d.broker);
  const order = [
    "member_registry",
    "data_registry",
    "access_ledger",
    "flow_log",
    "sharing_credits",
  ];
  order.forEach((name, nonce) => {
    assert.equal(getCreateAddress({ from: d.deployer, nonce }), d[name]);
    assert.equal(V.config[name], d[name]);
  });
  assert.equal(V.config.admin, d.admin);
  assert.equal(V.config.broker, d.broker);
  assert.deepEqual(
    V.config.domains,
    Object.fromEntries(
      Object.entries(V.eip712.domains).map(([name, { domain }]) => [name, domain]),
    ),
  );
});

test("EIP-712 domain separators", () => {
  for (const { domain, separator } of Object.values(V.eip712.domains)) {
    assert.equal(TypedDataEncoder.hashDomain(domain), separator);
  }
});

test("EIP-712 type strings", () => {
  for (const [primary, t] of Object.entries(V.eip712.types)) {
    if (primary === "EIP712Domain") continue;
    assert.equal(TypedDataEncoder.from({ [primary]: t.fields }).encodeType(primary), t.encode_type);
  }
});

test("every action of /v1/config has a vector", () => {
  const names = new Set(V.actions.map((a) => a.action));
  assert.deepEqual([...names].sort(), Object.keys(V.config.actions).sort());
});

for (const action of V.actions) {
  test(`EIP-712 digest and signer of ${action.name}`, async () => {
    const domain = action.eip712_domain;
    assert.deepEqual(domain, V.eip712.domains[action.domain].domain);
    assert.equal(V.config.actions[action.action].domain, action.domain);
    assert.deepEqual(
      V.config.actions[action.action].fields,
      V.eip712.types[action.primary_type].fields,
    );
    const types = typesOf(action.primary_type);
    assert.equal(
      TypedDataEncoder.hashStruct(action.primary_type, types, action.message),
      action.struct_hash,
    );
    assert.equal(TypedDataEncoder.hash(domain, types, action.message), action.digest);
    assert.equal(
      verifyTypedData(domain, types, action.message, action.signature),
      action.signer_address,
    );
    const wallet = new Wallet(V.keys.signing[action.signer].private_key);
    assert.equal(await wallet.signTypedData(domain, types, action.message), action.signature);
    assert.ok(canonicalSignature(action.signature), "v 27/28 and low s");
    assert.equal(action.signed.action, action.action);
    assert.equal(action.signed.actor, action.signer_address);
    assert.equal(action.signed.signature, action.signature);
    assert.deepEqual(action.signed.message, action.message);
    // register, grant, revoke: the contract's sequential nonce; the rest: random, >= 2**64
    const nonce = BigInt(action.message.nonce);
    if (["register", "grant", "revoke"].includes(action.action)) {
      assert.equal(action.nonce_kind, "sequential");
      assert.ok(nonce < 2n ** 64n);
    } else {
      assert.equal(action.nonce_kind, "random");
      assert.ok(nonce >= 2n ** 64n && nonce < 2n ** 256n);
    }
  });
}

test("the GrantApproval co-signs the grant's terms for the generation it creates", () => {
  const approval = actionNamed("approval");
  const grant = actionNamed("grant");
  assert.equal(approval.primary_type, "GrantApproval");
  assert.equal(approval.signer_address, V.deployment.admin);
  for (const k of ["datasetId", "grantee", "purposeHash", "expiresAt", "maxUses", "termsHash"]) {
    assert.equal(approval.message[k], grant.message[k]);
  }
  assert.equal(approval.message.generation, actionNamed("receipt").message.grantGeneration);
});

for (const c of V.refused_signatures) {
  test(`refused signature: ${c.name}`, () => {
    const of = actionNamed(/^actions\[name=(.*)\]$/.exec(c.of)[1]);
    assert.equal(c.digest, of.digest);
    assert.equal(c.refused_with, "invalid_signature");
    assert.ok(canonicalSignature(of.signature));
    assert.ok(!canonicalSignature(c.signature));
    const good = unhex(of.signature);
    const bad = unhex(c.signature);
    assert.deepEqual(bad.subarray(0, 32), good.subarray(0, 32));
    if (c.name === "high_s") {
      const s = BigInt(hex(good.subarray(32, 64)));
      assert.equal(BigInt(hex(bad.subarray(32, 64))), N - s);
      assert.equal(bad[64], 55 - good[64]);
      assert.equal(c.lax_signer, of.signer_address); // the mirror image recovers the same key
      // ethers refuses this one too (its s has the top bit set; ethers checks only that bit)
      assert.throws(() => recoverAddress(c.digest, c.signature), /non-canonical s/);
      assert.equal(Signature.from(c.signature).yParity, 1 - (good[64] - 27));
    } else {
      assert.deepEqual(bad.subarray(0, 64), good.subarray(0, 64));
      assert.equal(bad[64], Number(c.name.slice(-1)));
      // ethers accepts v 0/1 (as 27/28): a client must apply the rule itself
      assert.equal(recoverAddress(c.digest, c.signature), c.lax_signer);
      assert.equal(c.lax_signer === of.signer_address, bad[64] === good[64] - 27);
    }
  });
}

for (const request of V.requests) {
  test(`request signature: ${request.name}`, async () => {
    if ("body_text" in request) {
      assert.equal(
        sha256(Buffer.from(request.body_text, "utf8")).toString("hex"),
        request.body_sha256,
      );
    }
    const target = request.path + (request.query ? "?" + request.query : "");
    assert.equal(target, request.target);
    const message = [
      "DRL-HTTP-2",
      request.method,
      target,
      request.body_sha256,
      String(request.timestamp),
      request.nonce,
      String(request.chain_id),
      V.deployment.flow_log.toLowerCase(),
    ].join("\n");
    assert.equal(request.deployment, V.deployment.flow_log.toLowerCase());
    assert.equal(message, request.message_text);
    assert.equal(hex(Buffer.from(message, "utf8")), request.message_hex);
    assert.equal(hashMessage(toUtf8Bytes(message)), request.eip191_hash);
    assert.equal(verifyMessage(toUtf8Bytes(message), request.signature), request.address);
    const wallet = new Wallet(V.keys.signing[request.signer].private_key);
    assert.equal(await wallet.signMessage(toUtf8Bytes(message)), request.signature);
    assert.deepEqual(Object.keys(request.headers), [
      "X-DRL-Address",
      "X-DRL-Timestamp",
      "X-DRL-Nonce",
      "X-DRL-Content-SHA256",
      "X-DRL-Signature",
    ]);
    assert.equal(request.headers["X-DRL-Signature"], request.signature);
  });
}

/** RFC 6962 Merkle tree hash over already hashed leaves (SHA-256("") for none). */
function merkleRoot(leaves) {
  if (leaves.length === 0) return sha256(Buffer.alloc(0));
  if (leaves.length === 1) return leaves[0];
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return sha256(
    Buffer.concat([Buffer.from([1]), merkleRoot(leaves.slice(0, k)), merkleRoot(leaves.slice(k))]),
  );
}

/** The content hash: over fixed 1 MiB pieces, whatever chunk size a file was encrypted with. */
function contentHash(data, chunk = 1 << 20) {
  const leaves = [];
  for (let at = 0; at < data.length; at += chunk) {
    leaves.push(sha256(Buffer.concat([Buffer.from([0]), data.subarray(at, at + chunk)])));
  }
  return { leaves, root: merkleRoot(leaves) };
}

const ruleBytes = (n) => Buffer.from(Array.from({ length: n }, (_, i) => i % 251));

for (const c of V.content_hash.cases) {
  test(`content hash: ${c.name}`, () => {
    const { leaves, root } = contentHash(ruleBytes(c.length));
    assert.deepEqual(leaves.map(hex), c.leaf_hashes);
    assert.equal(hex(root), c.content_hash);
  });
}

test("content hash of the encrypted sample, and its ciphertext digest", () => {
  for (const d of V.datasets) {
    const plaintext =
      "plaintext_text" in d ? Buffer.from(d.plaintext_text, "utf8") : ruleBytes(d.plaintext_size);
    assert.equal(hex(contentHash(plaintext).root), d.content_hash);
    assert.equal(hex(sha256(unhex(d.ciphertext))), d.ciphertext_sha256);
    assert.equal(unhex(d.header).subarray(0, 4).toString("latin1"), "DRLE");
  }
});

test("documents: purpose, terms, receipt id, reason, metadata", () => {
  const docs = V.documents;
  assert.equal(
    hex(sha256(Buffer.from(docs.purpose.purpose_text, "utf8"))),
    docs.purpose.purpose_hash,
  );
  assert.equal(hex(sha256(Buffer.from(docs.terms.canonical, "utf8"))), docs.terms.terms_hash);
  assert.equal(
    hex(sha256(Buffer.from(docs.metadata.canonical, "utf8"))),
    docs.metadata.metadata_hash,
  );
  // the receipt id is the DeliveryReceipt's EIP-712 digest (SharingCredits domain)
  const receipt = actionNamed("receipt");
  assert.equal(docs.receipt_id.of, "actions[name=receipt]");
  assert.equal(docs.receipt_id.domain, "SharingCredits");
  assert.equal(
    TypedDataEncoder.hash(
      V.eip712.domains.SharingCredits.domain,
      typesOf("DeliveryReceipt"),
      receipt.message,
    ),
    docs.receipt_id.receipt_id,
  );
  assert.equal(receipt.message.fetchNonce, actionNamed("fetch").message.nonce);
  assert.equal(
    hex(sha256(Buffer.from(docs.reassign_reason.reason_text, "utf8"))),
    docs.reassign_reason.reason_hash,
  );
  assert.equal(actionNamed("reassign").message.reasonHash, docs.reassign_reason.reason_hash);
  for (const k of docs.key_context) {
    const expected = Buffer.concat([
      Buffer.from("drl/dek/v1|", "ascii"),
      unhex(k.content_hash),
      unhex(k.recipient.toLowerCase()),
    ]);
    assert.equal(hex(expected), k.key_context);
  }
});

test("the signing key file opens with ethers", async () => {
  const files = V.key_files;
  const wallet = await Wallet.fromEncryptedJson(
    JSON.stringify(files.signing_key.file),
    files.passphrase,
  );
  assert.equal(wallet.address, files.signing_key.address);
  assert.equal(wallet.privateKey, files.signing_key.private_key);
});
