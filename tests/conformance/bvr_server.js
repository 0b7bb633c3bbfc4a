#!/usr/bin/env node
/*
 * Line-delimited JSON bridge to Particle's `binary-version-reader` for bluemule's
 * conformance tests (driven by tests/conformance/bvr.py).
 *
 *   node bvr_server.js <install-dir>
 *
 * <install-dir> is the directory holding the node_modules that `npm ci` produced
 * from tests/conformance/package.json. Environment:
 *
 *   BVR_OP_TIMEOUT_MS  per-request time limit in milliseconds (default 10000)
 *
 * Protocol: one JSON object per line on stdin, one reply per line on stdout.
 *
 *   request  {"id": n, "op": "...", "args": {...}}      binary values are base64 strings
 *   reply    {"id": n, "ok": true, "result": ...}
 *            {"id": n, "ok": false, "error": "message", "errorName": "RangeError"}
 *
 * Requests are served one at a time, in order. The process never exits because of a
 * bad request or a library failure: synchronous throws, rejected promises, errors thrown
 * asynchronously inside the library's own event handlers (caught through
 * 'unhandledRejection' / 'uncaughtException' and blamed on the request in flight) and
 * hangs (bounded by BVR_OP_TIMEOUT_MS) all become error replies.
 * It exits when stdin closes. Anything the library logs goes to stderr, so stdout
 * carries nothing but replies.
 */
'use strict';

const path = require('path');
const { createRequire } = require('module');
const readline = require('readline');

// Keep stdout for the protocol alone.
for (const name of ['log', 'info', 'debug', 'warn', 'trace', 'dir']) {
	console[name] = console.error.bind(console);
}

const installDir = path.resolve(process.argv[2] || process.env.BVR_INSTALL_DIR || '.');
const requireFromInstall = createRequire(path.join(installDir, 'package.json'));
const bvr = requireFromInstall('binary-version-reader');
const bvrPackage = requireFromInstall('binary-version-reader/package.json');
const constantsPackage = requireFromInstall('@particle/device-constants/package.json');

const OP_TIMEOUT_MS = Number.parseInt(process.env.BVR_OP_TIMEOUT_MS || '10000', 10);

// ---------------------------------------------------------------------------
// Argument decoding and result encoding

class BadRequest extends Error {
	constructor(message) {
		super(message);
		this.name = 'BadRequest';
	}
}

function field(obj, key, where) {
	if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
		throw new BadRequest(`${where} must be an object`);
	}
	if (!(key in obj)) {
		throw new BadRequest(`missing ${where}.${key}`);
	}
	return obj[key];
}

function bytesArg(obj, key, where = 'args') {
	const value = field(obj, key, where);
	if (typeof value !== 'string') {
		throw new BadRequest(`${where}.${key} must be a base64 string`);
	}
	return Buffer.from(value, 'base64');
}

function stringArg(obj, key, where = 'args') {
	const value = field(obj, key, where);
	if (typeof value !== 'string') {
		throw new BadRequest(`${where}.${key} must be a string`);
	}
	return value;
}

function arrayArg(obj, key, where = 'args') {
	const value = field(obj, key, where);
	if (!Array.isArray(value)) {
		throw new BadRequest(`${where}.${key} must be an array`);
	}
	return value;
}

function namedBlobArg(value, where) {
	return { name: stringArg(value, 'name', where), data: bytesArg(value, 'data', where) };
}

function b64(buf) {
	return Buffer.from(buf).toString('base64');
}

// JSON-normalise a parse result: Buffers and typed arrays become hex strings,
// everything else is kept as the library produced it.
function normalise(value) {
	if (Buffer.isBuffer(value) || value instanceof Uint8Array) {
		return Buffer.from(value).toString('hex');
	}
	if (Array.isArray(value)) {
		return value.map(normalise);
	}
	if (value !== null && typeof value === 'object') {
		const out = {};
		for (const [key, item] of Object.entries(value)) {
			if (item !== undefined) {
				out[key] = normalise(item);
			}
		}
		return out;
	}
	return value;
}

function namedBlobResult(blob) {
	if (!blob) {
		return null;
	}
	return { name: blob.name, data: b64(blob.data) };
}

// ---------------------------------------------------------------------------
// Operations

const ops = {
	async version() {
		return {
			binaryVersionReader: bvrPackage.version,
			deviceConstants: constantsPackage.version,
			node: process.version,
		};
	},

	async parse(args) {
		const fileBuffer = bytesArg(args, 'data');
		const info = await new bvr.HalModuleParser().parseBuffer({ fileBuffer });
		const { fileBuffer: _dropped, ...rest } = info;
		return normalise(rest);
	},

	async compressModule(args) {
		return { data: b64(await bvr.compressModule(bytesArg(args, 'data'))) };
	},

	async decompressModule(args) {
		return { data: b64(await bvr.decompressModule(bytesArg(args, 'data'))) };
	},

	async unwrapAssetModule(args) {
		return { data: b64(await bvr.unwrapAssetModule(bytesArg(args, 'data'))) };
	},

	async combineModules(args) {
		const modules = arrayArg(args, 'modules').map((m, i) => {
			if (typeof m !== 'string') {
				throw new BadRequest(`args.modules[${i}] must be a base64 string`);
			}
			return Buffer.from(m, 'base64');
		});
		return { data: b64(await bvr.combineModules(modules)) };
	},

	async splitCombinedModules(args) {
		const modules = await bvr.splitCombinedModules(bytesArg(args, 'data'));
		return { modules: modules.map(b64) };
	},

	async createAssetModule(args) {
		const data = bytesArg(args, 'data');
		const name = stringArg(args, 'name');
		const compress = 'compress' in args ? args.compress : true;
		if (typeof compress !== 'boolean') {
			throw new BadRequest('args.compress must be a boolean');
		}
		return { data: b64(await bvr.createAssetModule(data, name, { compress })) };
	},

	async updateModuleAssetDependencies(args) {
		const data = bytesArg(args, 'data');
		const assets = arrayArg(args, 'assets').map((a, i) => namedBlobArg(a, `args.assets[${i}]`));
		return { data: b64(await bvr.updateModuleAssetDependencies(data, assets)) };
	},

	async createApplicationAndAssetBundle(args) {
		const app = namedBlobArg(field(args, 'app', 'args'), 'args.app');
		const assets = arrayArg(args, 'assets').map((a, i) => namedBlobArg(a, `args.assets[${i}]`));
		const zip = await bvr.createApplicationAndAssetBundle(app, assets);
		if (!Buffer.isBuffer(zip)) {
			throw new Error('createApplicationAndAssetBundle returned no data');
		}
		return { data: b64(zip) };
	},

	async unpackApplicationAndAssetBundle(args) {
		const bundle = await bvr.unpackApplicationAndAssetBundle(bytesArg(args, 'data'));
		const result = {
			application: namedBlobResult(bundle.application),
			assets: (bundle.assets || []).map(namedBlobResult),
		};
		if (bundle.vars !== undefined) {
			result.vars = bundle.vars;
		}
		return result;
	},

	// Test hooks for the harness's own failure paths.
	async _debugSleep(args) {
		const ms = field(args, 'ms', 'args');
		await new Promise((resolve) => setTimeout(resolve, ms));
		return { slept: ms };
	},

	async _debugThrowLater(args) {
		const message = stringArg(args, 'message');
		// An exception thrown from a timer, outside any promise chain of the request:
		// only process.on('uncaughtException') can see it.
		setTimeout(() => {
			throw new Error(message);
		}, 1);
		return new Promise(() => {});
	},
};

// ---------------------------------------------------------------------------
// Request loop

function send(reply) {
	process.stdout.write(JSON.stringify(reply) + '\n');
}

function errorMessage(err) {
	if (err instanceof Error) {
		return err.message || String(err);
	}
	try {
		return typeof err === 'string' ? err : JSON.stringify(err);
	} catch (_) {
		return String(err);
	}
}

function errorName(err) {
	return err instanceof Error ? err.name : typeof err;
}

class Pending {
	constructor(id) {
		this.id = id;
		this.settled = false;
		this.failure = null;
		this.timer = null;
		this.wake = null;
	}

	// Record an error from outside the op's promise chain and stop waiting for it.
	failAsync(err) {
		if (this.settled || this.failure) {
			return false;
		}
		this.failure = err;
		if (this.wake) {
			this.wake();
		}
		return true;
	}
}

let current = null;

// Requests run one at a time, so an error that escapes every promise chain is blamed
// on the request in flight. (AsyncLocalStorage is no help: the rejections thrown from
// unpackApplicationAndAssetBundle's unzip 'entry' handlers carried the async context of
// the *previous* request about a third of the time in testing, presumably through
// unzipper's bluebird scheduling.) With nothing in flight the error is logged to stderr.
function onStrayError(kind, err) {
	if (current && current.failAsync(err)) {
		return;
	}
	process.stderr.write(`bvr_server: ${kind} outside any request: ${errorMessage(err)}\n`);
}

process.on('unhandledRejection', (reason) => onStrayError('unhandledRejection', reason));
process.on('uncaughtException', (err) => onStrayError('uncaughtException', err));

// unpackApplicationAndAssetBundle resolves on the unzip stream's 'finish' without
// waiting for its async 'entry' handlers; an error one of them throws never rejects
// that promise. In practice it surfaces before the promise resolves, but nothing
// guarantees it, so give stragglers a little extra time after a successful unpack.
const SETTLE_MS = { unpackApplicationAndAssetBundle: 20 };

function nextMacrotask() {
	return new Promise((resolve) => setImmediate(resolve));
}

async function handle(request) {
	const { id, op, args } = request;
	const fn = Object.prototype.hasOwnProperty.call(ops, op) ? ops[op] : undefined;
	if (typeof fn !== 'function') {
		send({ id, ok: false, error: `unknown op: ${JSON.stringify(op)}`, errorName: 'BadRequest' });
		return;
	}
	const pending = new Pending(id);
	current = pending;

	const interrupted = new Promise((resolve) => {
		pending.wake = () => resolve({ ok: false, error: pending.failure });
		pending.timer = setTimeout(() => {
			resolve({ ok: false, error: new Error(`${op} timed out after ${OP_TIMEOUT_MS} ms`) });
		}, OP_TIMEOUT_MS);
	});
	const work = (async () => {
		try {
			const result = await fn(args === undefined ? {} : args);
			// Let errors thrown in the library's event handlers (which do not reject the
			// promise we awaited) surface before the result is trusted.
			await nextMacrotask();
			await nextMacrotask();
			if (SETTLE_MS[op]) {
				await new Promise((resolve) => setTimeout(resolve, SETTLE_MS[op]));
			}
			return { ok: true, result };
		} catch (error) {
			return { ok: false, error };
		}
	})();
	let outcome = await Promise.race([work, interrupted]);
	if (outcome.ok && pending.failure) {
		outcome = { ok: false, error: pending.failure };
	}
	clearTimeout(pending.timer);
	pending.settled = true;
	current = null;

	if (outcome.ok) {
		let line;
		try {
			line = JSON.stringify({ id, ok: true, result: outcome.result });
		} catch (err) {
			send({ id, ok: false, error: `result not serialisable: ${errorMessage(err)}`, errorName: 'Error' });
			return;
		}
		process.stdout.write(line + '\n');
	} else {
		send({ id, ok: false, error: errorMessage(outcome.error), errorName: errorName(outcome.error) });
	}
}

const queue = [];
let busy = false;
let inputClosed = false;

async function drain() {
	if (busy) {
		return;
	}
	busy = true;
	while (queue.length) {
		const line = queue.shift();
		let request;
		try {
			request = JSON.parse(line);
		} catch (err) {
			send({ id: null, ok: false, error: `invalid JSON request: ${errorMessage(err)}`, errorName: 'BadRequest' });
			continue;
		}
		if (request === null || typeof request !== 'object' || Array.isArray(request)) {
			send({ id: null, ok: false, error: 'request must be a JSON object', errorName: 'BadRequest' });
			continue;
		}
		try {
			await handle(request);
		} catch (err) {
			send({ id: request.id ?? null, ok: false, error: errorMessage(err), errorName: errorName(err) });
		}
	}
	busy = false;
	if (inputClosed) {
		process.exit(0);
	}
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
rl.on('line', (line) => {
	if (line.trim() === '') {
		return;
	}
	queue.push(line);
	drain();
});
rl.on('close', () => {
	inputClosed = true;
	if (!busy) {
		process.exit(0);
	}
});
