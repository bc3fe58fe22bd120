/**
 * Reading guest files through the QEMU guest agent is bounded, whatever the guest does: a fake
 * daemon plays libvirtd and a hostile agent (qemu-agent-command over libvirt RPC) that streams
 * endless data, drips one byte per reply or stops answering.
 */
import assert from "node:assert/strict";
import { XdrReader, XdrWriter } from "../../lib/xdr/mod.ts";
import {
  type DomainRef,
  Libvirt,
  MessageType,
  Procedure,
  Program,
  QemuProcedure,
} from "../../lib/libvirt/mod.ts";
import { readDomain, readStr, writeOptStr } from "../../lib/libvirt/wire.ts";
import {
  agentCall,
  GuestAgentError,
  GuestFileTooLargeError,
  guestReadFile,
} from "../../lib/foundry/agent.ts";
import { rawFrame, startFakeDaemon, writeAll } from "../libvirt/fake_daemon.ts";

interface AgentCommand {
  execute: string;
  arguments?: Record<string, unknown>;
}

/**
 * A fake libvirtd whose guest agent answers with `agent(cmd)`: a value becomes `{"return": ...}`,
 * `{ error }` an agent error, and undefined no reply at all.
 */
function fakeAgentDaemon(agent: (cmd: AgentCommand) => unknown) {
  const commands: AgentCommand[] = [];
  const fake = startFakeDaemon(async (f, conn) => {
    if (f.type !== MessageType.CALL) return;
    let payload = new Uint8Array();
    if (f.prog === Program.QEMU && f.proc === QemuProcedure.DOMAIN_AGENT_COMMAND) {
      const r = new XdrReader(f.payload);
      readDomain(r);
      const cmd = JSON.parse(readStr(r)) as AgentCommand;
      commands.push(cmd);
      const answer = agent(cmd);
      if (answer === undefined) return;
      const json = typeof answer === "object" && answer !== null && "error" in answer
        ? JSON.stringify(answer)
        : JSON.stringify({ return: answer });
      const w = new XdrWriter();
      writeOptStr(w, json);
      payload = w.bytes().slice();
    } else if (f.proc === Procedure.AUTH_LIST) {
      payload = new XdrWriter().writeUint(0).bytes().slice(); // no authentication
    } else if (f.proc === Procedure.CONNECT_SUPPORTS_FEATURE) {
      payload = new XdrWriter().writeInt(0).bytes().slice(); // no keepalive
    }
    await writeAll(
      conn,
      rawFrame(
        { prog: f.prog, proc: f.proc, type: MessageType.REPLY, serial: f.serial, status: 0 },
        payload,
      ),
    );
  });
  return {
    commands,
    connect: () => Libvirt.connect(`qemu+tcp://127.0.0.1:${fake.port}/system`),
    close: () => fake.close(),
  };
}

const domain: DomainRef = { name: "hostile", uuid: new Uint8Array(16), id: 1 };
/** 65536 zero bytes in base64, as the agent sends a read of /dev/zero. */
const ZEROS_64K = "A".repeat(21845 * 4) + "AA==";

/** Fails the test when `p` has not settled after `ms`: a guard against a hang only. */
function hangGuard<T>(p: Promise<T>, ms = 60_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms);
  });
  return Promise.race([p, guard]).finally(() => clearTimeout(timer));
}

function fileAgent(read: (n: number) => unknown) {
  let reads = 0;
  return (cmd: AgentCommand) => {
    switch (cmd.execute) {
      case "guest-file-open":
        return 7;
      case "guest-file-read":
        return read(++reads);
      case "guest-file-close":
        return {};
      default:
        return { error: { desc: `unexpected ${cmd.execute}` } };
    }
  };
}

Deno.test("guestReadFile stops at its byte cap when the guest streams endless data", async () => {
  // boot-finished pointed at /dev/zero: 64 KiB per read, never at the end.
  const d = fakeAgentDaemon(fileAgent(() => ({ count: 65536, "buf-b64": ZEROS_64K, eof: false })));
  const lv = await d.connect();
  try {
    await hangGuard(assert.rejects(
      guestReadFile(lv, domain, "/var/lib/cloud/instance/boot-finished", {
        maxBytes: 256 * 1024,
      }),
      (e: unknown) => {
        assert.ok(e instanceof GuestFileTooLargeError, `got ${e}`);
        assert.ok(e instanceof GuestAgentError);
        assert.match(e.message, /boot-finished is larger than 262144 bytes/);
        return true;
      },
    ));
    const reads = d.commands.filter((c) => c.execute === "guest-file-read").length;
    assert.ok(reads <= 5, `${reads} reads for a 256 KiB cap`);
    assert.equal(d.commands.at(-1)?.execute, "guest-file-close", "the handle was not closed");
  } finally {
    await lv.close();
    await d.close();
  }
});

Deno.test("guestReadFile gives up at its deadline when the guest drips one byte per read", async () => {
  const d = fakeAgentDaemon(fileAgent(() => ({ count: 1, "buf-b64": "QQ==", eof: false })));
  const lv = await d.connect();
  try {
    await hangGuard(assert.rejects(
      guestReadFile(lv, domain, "/slow", { timeoutMs: 300 }),
      (e: unknown) => {
        assert.ok(e instanceof GuestAgentError, `got ${e}`);
        assert.match(e.message, /reading \/slow did not finish within 300 ms/);
        return true;
      },
    ));
  } finally {
    await lv.close();
    await d.close();
  }
});

Deno.test("guestReadFile gives up at its deadline when the agent stops answering", async () => {
  const d = fakeAgentDaemon(
    fileAgent((n) => n === 1 ? { count: 1, "buf-b64": "QQ==", eof: false } : undefined),
  );
  const lv = await d.connect();
  try {
    await hangGuard(assert.rejects(
      guestReadFile(lv, domain, "/stuck", { timeoutMs: 300 }),
      /reading \/stuck did not finish within 300 ms/,
    ));
    // The connection is still usable: the stuck call was abandoned, not the connection.
    assert.equal(lv.rpc.closed, false);
  } finally {
    await lv.close();
    await d.close();
  }
});

Deno.test("guestReadFile returns a small file whole", async () => {
  const d = fakeAgentDaemon(
    fileAgent((n) =>
      n === 1
        ? { count: 5, "buf-b64": btoa("hello"), eof: false }
        : { count: 0, "buf-b64": "", eof: true }
    ),
  );
  const lv = await d.connect();
  try {
    assert.equal(await guestReadFile(lv, domain, "/etc/hostname"), "hello");
  } finally {
    await lv.close();
    await d.close();
  }
});

Deno.test("an agent's error text is cut to a bounded length", async () => {
  const d = fakeAgentDaemon(() => ({ error: { desc: "x".repeat(100_000) } }));
  const lv = await d.connect();
  try {
    await assert.rejects(agentCall(lv, domain, "guest-ping"), (e: unknown) => {
      assert.ok(e instanceof GuestAgentError);
      assert.ok(e.message.length < 2_000, `message of ${e.message.length} characters`);
      return true;
    });
  } finally {
    await lv.close();
    await d.close();
  }
});
