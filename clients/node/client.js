#!/usr/bin/env node
// A pns-gateway client in Node.js: @grpc/grpc-js with @grpc/proto-loader, which loads
// proto/pns/v1/*.proto at run time (no generation step); google.rpc error details are decoded
// with protobufjs from the `grpc-status-details-bin` trailer (google/rpc protos in ./proto).
//
// It walks the product's main path against a running gateway and checks each answer: create a
// local pool, add three virtual numbers, bind XYB, send the call-in, report the hang-up, read
// the binding's events, and send a bad request whose ErrorInfo reason and BadRequest field it
// decodes. Any unexpected answer exits non-zero.
//
//   npm ci && node client.js --target 127.0.0.1:50051
//
// With API keys configured on the server, set PNS_API_KEY to the admin key.
'use strict';

const path = require('node:path');
const crypto = require('node:crypto');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const PROTO_ROOT = path.join(__dirname, '..', '..', 'proto');

// Enums as their names (EVENT_KIND_CALL_HANGUP), 64-bit integers as strings, defaults filled
// in, oneofs named: the proto3 JSON view most Node code expects.
const pkg = grpc.loadPackageDefinition(
  protoLoader.loadSync(
    ['pns/v1/common.proto', 'pns/v1/binding.proto', 'pns/v1/pool.proto', 'pns/v1/call.proto'],
    { includeDirs: [PROTO_ROOT], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true },
  ),
).pns.v1;

const rpcTypes = protobuf.loadSync([
  path.join(__dirname, 'proto', 'google', 'rpc', 'status.proto'),
  path.join(__dirname, 'proto', 'google', 'rpc', 'error_details.proto'),
]);
const Status = rpcTypes.lookupType('google.rpc.Status');

class Failed extends Error {}

function expect(cond, what) {
  if (!cond) throw new Failed(what);
}

function step(msg) {
  console.log(`node client: ${msg}`);
}

function randomDigits(n) {
  let s = '';
  for (let i = 0; i < n; i++) s += crypto.randomInt(10);
  return s;
}

// Promise wrapper for a unary call.
function unary(client, method, request, opts) {
  return new Promise((resolve, reject) => {
    client[method](request, opts.metadata, { deadline: Date.now() + opts.timeoutMs }, (err, res) =>
      err ? reject(err) : resolve(res),
    );
  });
}

// The google.rpc.Status of a failed call, with every detail unpacked by its type URL.
function errorDetails(err) {
  const bin = err.metadata && err.metadata.get('grpc-status-details-bin');
  expect(bin && bin.length === 1, `${err.code} carries no google.rpc.Status details`);
  const status = Status.decode(bin[0]);
  const details = status.details.map((any) => {
    // protobufjs's bundled google.protobuf.Any keeps the proto field name `type_url`.
    const type = rpcTypes.lookupType(any.type_url.replace(/^.*\//, ''));
    return { type: type.fullName.replace(/^\./, ''), value: type.toObject(type.decode(any.value)) };
  });
  return { status, details };
}

async function run(target, apiKey, timeoutMs) {
  const metadata = new grpc.Metadata();
  if (apiKey) metadata.set('authorization', `Bearer ${apiKey}`);
  const opts = { metadata, timeoutMs };
  const creds = grpc.credentials.createInsecure();
  const pools = new pkg.NumberPoolService(target, creds);
  const bindings = new pkg.BindingService(target, creds);
  const calls = new pkg.CallService(target, creds);

  const runId = randomDigits(8);
  const poolKey = `node-${runId}`;
  const { pool } = await unary(pools, 'CreatePool', { pool_key: poolKey }, opts);
  expect(pool.provider === 'PROVIDER_LOCAL', `pool provider ${pool.provider}`);
  step(`created pool ${pool.pool_key}`);

  // Virtual numbers are unique across pools: a random block per run.
  const numbers = [0, 1, 2].map((i) => `8522${runId}${i}`);
  const added = await unary(
    pools,
    'AddNumbers',
    { pool_key: poolKey, numbers: numbers.map((number) => ({ number, iso2: 'HK' })) },
    opts,
  );
  expect(added.added === 3 && added.skipped === 0, `AddNumbers answered ${JSON.stringify(added)}`);
  step(`added ${added.added} numbers`);

  const phoneA = '85291113333';
  const phoneB = '85264655555';
  const { binding: b } = await unary(
    bindings,
    'BindXyb',
    { pool_key: poolKey, phone_b: phoneB, customer_bind_id: `order-${runId}`, bind_expire_seconds: 3600 },
    opts,
  );
  expect(b.state === 'BINDING_STATE_XYB', `new binding state ${b.state}`);
  expect(numbers.includes(b.number_x) && numbers.includes(b.number_y), 'X and Y come from the pool');
  step(`bound XYB ${b.binding_id}: X ${b.number_x}, Y ${b.number_y}`);

  const callId = `node-call-${runId}`;
  const routed = await unary(calls, 'NotifyCallIn', { caller: phoneA, called: b.number_x, call_id: callId }, opts);
  expect(routed.decision === 'DECISION_CONNECT', `decision ${routed.decision}`);
  expect(routed.connect_to === phoneB, "A's call to X reaches B");
  expect(routed.display_number === b.number_y, 'B is shown Y');
  expect(routed.binding.state === 'BINDING_STATE_AXYB', 'the first call-in converts');
  step(`call-in routed: connect, shown ${routed.display_number}`);

  const report = await unary(
    calls,
    'ReportCallEvent',
    {
      call_id: callId,
      kind: 'CALL_EVENT_KIND_HANGUP',
      duration_seconds: 42,
      release_direction: 'RELEASE_DIRECTION_CALLEE',
      release_cause: 16,
    },
    opts,
  );
  expect(BigInt(report.sequence) > BigInt(routed.event_sequence) && !report.duplicate, JSON.stringify(report));
  step(`hang-up reported as event ${report.sequence}`);

  // The binding's events, replayed from the start; the stream stays open (live), so stop at
  // the hang-up.
  const events = await new Promise((resolve, reject) => {
    const got = [];
    const stream = calls.WatchEvents(
      { after_sequence: 0, binding_id: b.binding_id },
      metadata,
      { deadline: Date.now() + timeoutMs },
    );
    stream.on('data', (ev) => {
      got.push(ev);
      if (ev.event_kind === 'EVENT_KIND_CALL_HANGUP') {
        stream.cancel();
        resolve(got);
      }
    });
    stream.on('error', (err) => {
      if (err.code !== grpc.status.CANCELLED) reject(err);
    });
    stream.on('end', () => reject(new Failed(`stream ended after ${got.length} events`)));
  });
  const kinds = events.map((ev) => ev.kind);
  expect(
    JSON.stringify(kinds) === JSON.stringify(['binding.created', 'binding.converted', 'call.incoming', 'call.hangup']),
    `events ${kinds}`,
  );
  const [created, converted, incoming, hangup] = events;
  expect(created.event_kind === 'EVENT_KIND_BINDING_CREATED', 'enum of binding.created');
  expect(created.details === 'binding_detail', 'typed lifecycle detail');
  expect(created.binding_detail.state === 'BINDING_STATE_XYB', 'created as XYB');
  expect(converted.binding_detail.state === 'BINDING_STATE_AXYB', 'converted to AXYB');
  expect(incoming.sequence === routed.event_sequence, "the call-in's event");
  expect(incoming.call_in_detail.decision === 'DECISION_CONNECT', 'typed decision');
  expect(incoming.call_in_detail.display_number === b.number_y, 'typed display number');
  expect(hangup.sequence === report.sequence, "the hang-up's event");
  const cdr = hangup.call_report_detail;
  expect(cdr.duration_seconds === '42' && cdr.release_cause === 16, `typed CDR ${JSON.stringify(cdr)}`);
  expect(cdr.release_direction === 'RELEASE_DIRECTION_CALLEE', 'typed release side');
  step(`read ${events.length} events: ${kinds.join(', ')}`);

  let rejected = null;
  try {
    await unary(bindings, 'BindXyb', { pool_key: poolKey, phone_b: '12' }, opts);
  } catch (err) {
    rejected = err;
  }
  expect(rejected, 'a bind with a 2-digit phone_b was accepted');
  expect(rejected.code === grpc.status.INVALID_ARGUMENT, `code ${rejected.code} ${rejected.details}`);
  const { status, details } = errorDetails(rejected);
  expect(status.code === grpc.status.INVALID_ARGUMENT, `google.rpc.Status code ${status.code}`);
  const info = details.find((d) => d.type === 'google.rpc.ErrorInfo');
  expect(info, 'an ErrorInfo detail');
  expect(info.value.domain === 'pns.gateway', `ErrorInfo domain ${info.value.domain}`);
  expect(info.value.reason === 'MOBILE_NUMBER_ILLEGAL', `ErrorInfo reason ${info.value.reason}`);
  const bad = details.find((d) => d.type === 'google.rpc.BadRequest');
  expect(bad, 'a BadRequest detail');
  const fields = bad.value.fieldViolations.map((v) => v.field);
  expect(JSON.stringify(fields) === '["phone_b"]', `violations on ${fields}`);
  step(`bad request decoded: INVALID_ARGUMENT ${info.value.reason} on ${fields[0]}`);

  for (const c of [pools, bindings, calls]) c.close();
}

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const started = process.hrtime.bigint();
run(arg('--target', '127.0.0.1:50051'), process.env.PNS_API_KEY || '', Number(arg('--timeout', '10')) * 1000).then(
  () => {
    const s = Number(process.hrtime.bigint() - started) / 1e9;
    console.log(`node client: OK in ${s.toFixed(2)} s`);
  },
  (err) => {
    console.error(`node client: FAILED: ${err instanceof Failed ? err.message : err.stack || err}`);
    process.exitCode = 1;
  },
);
