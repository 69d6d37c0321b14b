/**
 * The generated client used as an app would, against Ahoy's local host with the Twilio
 * sandbox behind it (tests/test_typescript_client.py starts both and sets AHOY_URL). Run by
 * node's own test runner.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";

import { createAhoyClient, remedyFor, type AhoyClient } from "../src/index.js";

const baseUrl = process.env["AHOY_URL"] ?? "http://127.0.0.1:7071";
// No key: the local host signs the user in as its development principal (in Azure the app
// sends the user's token: headers: { Authorization: `Bearer ${token}` }).
const ahoy: AhoyClient = createAhoyClient({ baseUrl });
const TO = "+14155551234";

async function until<T>(read: () => Promise<T | undefined>, seconds = 15): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    const found = await read();
    if (found !== undefined) return found;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error("timed out");
}

test("an SMS with an Idempotency-Key is sent once and read until delivered", async () => {
  const idempotencyKey = randomUUID();
  const send = () =>
    ahoy.POST("/api/sendSms", {
      body: { to: TO, body: "ahoy from TypeScript" },
      params: { header: { "Idempotency-Key": idempotencyKey } },
    });
  const first = await send();
  assert.equal(first.response.status, 201);
  assert.ok(first.data);
  const sid: string = first.data.sid;
  const again = await send(); // a retry: the first answer, not a second message
  assert.equal(again.response.headers.get("Idempotent-Replayed"), "true");
  assert.equal(again.data?.sid, sid);

  const delivered = await until(async () => {
    const { data } = await ahoy.GET("/api/messages/{sid}", { params: { path: { sid } } });
    return data?.status === "delivered" ? data : undefined;
  });
  assert.deepEqual(
    delivered.history.map((change) => change.status),
    ["queued", "sent", "delivered"],
  );
});

test("a call is placed and read until completed", async () => {
  const { data, response } = await ahoy.POST("/api/makeCall", {
    body: { to: TO, message: "Hello from TypeScript" },
    params: { header: { "Idempotency-Key": randomUUID() } },
  });
  assert.equal(response.status, 201);
  assert.ok(data);
  const sid = data.sid;
  const completed = await until(async () => {
    const seen = await ahoy.GET("/api/calls/{sid}", { params: { path: { sid } } });
    return seen.data?.status === "completed" ? seen.data : undefined;
  });
  assert.equal(completed.to, TO);
});

test("problems arrive typed, and each type has a remedy", async () => {
  const invalid = await ahoy.POST("/api/sendSms", {
    body: { to: "not a number", body: "" },
    params: { header: {} },
  });
  assert.equal(invalid.response.status, 422);
  assert.ok(invalid.error);
  assert.equal(invalid.error.type, "urn:ahoy:problem:validation-failed");
  assert.deepEqual(invalid.error.errors?.map((e) => e.field).sort(), ["body", "to"]);
  assert.equal(remedyFor(invalid.error.type), "fix-the-request");

  const missing = await ahoy.GET("/api/messages/{sid}", {
    params: { path: { sid: "SM" + "0".repeat(32) } },
  });
  assert.equal(missing.response.status, 404);
  assert.equal(missing.error?.type, "urn:ahoy:problem:not-found");

  const refused = await ahoy.POST("/api/sendSms", {
    body: { to: TO, body: "a server key that is none" },
    params: { header: {} },
    headers: { "X-Ahoy-Key": "not one of CALLER_KEYS" }, // a server's key, checked first
  });
  assert.equal(refused.response.status, 401);
  assert.equal(refused.error?.type, "urn:ahoy:problem:not-authenticated");
  assert.equal(remedyFor(refused.error.type), "sign-in");
});

test("health is readable without a key", async () => {
  const { data, response } = await createAhoyClient({ baseUrl }).GET("/api/health");
  assert.equal(response.status, 200);
  assert.equal(data?.status, "healthy");
});
