import { Command, InvalidArgumentError } from "npm:commander@^15.1.0";
import type { FoundryConfig } from "../../lib/foundry/config.ts";
import {
  checkPullUrl,
  type Checksum,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_MAX_PULL_BYTES,
  deleteImage,
  type ImageDetails,
  imageInfo,
  imageNameFromUrl,
  ImageRequestError,
  type ImageSummary,
  importImage,
  listImages,
  parseChecksum,
  pullImage,
  PullLimitError,
  redactUrl,
  type TransferOptions,
} from "../../lib/foundry/images.ts";
import { ensureDirPool, lookupPool, StorageError } from "../../lib/foundry/pools.ts";
import type { Libvirt } from "../../lib/libvirt/mod.ts";
import { createProgress, formatBytes, type Progress } from "../../lib/output/progress.ts";
import { type Column, formatNames } from "../../lib/output/listing.ts";
import { addListingOptions, type ListingFlags, printListing } from "../_listing.ts";
import { type Io, processIo } from "../_program.ts";
import { outputOption, printOutput, withStorage } from "./_storage.ts";
import { configFor } from "./_context.ts";
import { withFoundryAudit } from "../_audit.ts";
import { interruptSignal, signalOption } from "../_signals.ts";
import { sanitizeText } from "../../lib/output/sanitize.ts";

const IMAGE_COLUMNS: Column<ImageSummary>[] = [
  { header: "NAME", value: (i) => i.name },
  { header: "FORMAT", value: (i) => i.format ?? "-" },
  { header: "VIRTUAL SIZE", value: (i) => formatBytes(i.virtualSize) },
  { header: "ALLOCATION", value: (i) => formatBytes(i.allocation) },
  { header: "SHA256", value: (i) => i.sha256 === null ? "-" : i.sha256.slice(0, 12) },
  { header: "USED BY", value: (i) => String(i.users) },
  { header: "SHA256 (FULL)", value: (i) => i.sha256 ?? "-", wide: true },
  { header: "PATH", value: (i) => i.path, wide: true },
];

function printDetails(io: Io, flags: ListingFlags, i: ImageDetails): void {
  const format = flags.output;
  if (format === "name") return io.out(formatNames("image", [i.name]));
  if (format === "json" || format === "yaml") {
    printOutput(io, format, i, [], []);
    return;
  }
  io.out(sanitizeText(
    [
      `Name:          ${i.name}`,
      `Pool:          ${i.pool}`,
      `Path:          ${i.path}`,
      `Format:        ${i.format ?? "-"}`,
      `Virtual size:  ${formatBytes(i.virtualSize)} (${i.virtualSize} bytes)`,
      `Allocation:    ${formatBytes(i.allocation)}`,
      `SHA-256:       ${i.sha256 ?? "- (not imported by foundry)"}`,
      `Used by:       ${i.users === 0 ? "nothing" : `${i.users} disk(s)`}`,
    ].join("\n") + "\n",
  ));
  if (i.usedBy.length > 0) {
    io.out("\n");
    printListing(io, flags, i.usedBy, {
      columns: [
        { header: "VM", value: (u) => u.vm ?? "-" },
        { header: "VOLUME", value: (u) => u.volume ?? "(the image itself)" },
        { header: "PATH", value: (u) => u.path },
      ],
      kind: "volume",
      name: (u) => u.volume ?? u.path,
    });
  }
}

/**
 * Runs an import or pull with a progress report on stderr and Ctrl-C wired to an abort (the partial
 * volume is removed), into the configured images pool (created on first use).
 */
async function transfer(
  io: Io,
  cmd: Command,
  label: string,
  run: (lv: Libvirt, pool: string, opts: TransferOptions) => Promise<ImageSummary>,
): Promise<ImageSummary> {
  // Ctrl-C, SIGTERM, SIGHUP (cli/_signals.ts).
  const signal = interruptSignal() ?? new AbortController().signal;
  let progress: Progress | undefined;
  try {
    return await withStorage(cmd, async (lv: Libvirt, config: FoundryConfig) => {
      await ensureDirPool(lv, config.imagesPool, config.imagesPath);
      const image = await run(lv, config.imagesPool, {
        signal,
        onStart: (total) => {
          progress = createProgress({
            label,
            total,
            isTerminal: io === processIo && Deno.stderr.isTerminal(),
            write: io.err,
          });
        },
        onProgress: (n) => progress?.update(n),
      });
      progress?.done();
      return image;
    });
  } catch (e) {
    progress?.fail();
    throw e;
  }
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  k: 2 ** 10,
  m: 2 ** 20,
  g: 2 ** 30,
  t: 2 ** 40,
};

/** `--max-size`: bytes, or a number with K, M, G or T (powers of 1024, as qemu-img reads them). */
function parseMaxSize(text: string): number {
  const m = /^(\d+)\s*([kmgt]?)(?:i?b)?$/i.exec(text.trim());
  const n = m ? Number(m[1]) * SIZE_UNITS[m[2]!.toLowerCase()]! : NaN;
  if (!(n > 0) || !Number.isSafeInteger(n)) {
    throw new InvalidArgumentError("expected a size above 0 such as 64G, 512M or 1073741824");
  }
  return n;
}

/** `--connect-timeout`, `--idle-timeout`: seconds above 0, fractions allowed; returns ms. */
function parseSeconds(text: string): number {
  const n = /^\d+(\.\d+)?$/.test(text.trim()) ? Number(text) : NaN;
  if (!(n > 0) || n > 86_400) {
    throw new InvalidArgumentError("expected seconds above 0 and at most 86400");
  }
  return Math.round(n * 1000);
}

/** The flag that raises the limit a pull ran into. */
const LIMIT_FLAG = { size: "--max-size", connect: "--connect-timeout", idle: "--idle-timeout" };

function printImported(io: Io, format: string, verb: string, i: ImageSummary): void {
  if (format === "name") io.out(formatNames("image", [i.name]));
  else if (format === "table") {
    io.out(
      `${verb} ${i.name} into pool ${i.pool}: ${i.format}, virtual size ` +
        `${formatBytes(i.virtualSize)}, sha256 ${i.sha256}\n`,
    );
  } else printOutput(io, format, i, [], []);
}

/** `foundry image`: import, pull, list, show and delete base images. */
export function imageCommand(io: Io): Command {
  const image = new Command("image").description(
    "Manage base images in the images pool (--image-pool; default foundry-images)",
  );

  image.command("import")
    .description("Import a local qcow2 or raw image file, or an ISO 9660 installation image")
    .argument("<path>", "image file")
    .argument("<name>", "image name, ending in .qcow2, .raw or .iso to match the file's format")
    .addOption(outputOption())
    .addHelpText(
      "after",
      "\nExamples:\n  foundry image import /path/to/fedora-43.qcow2 fedora-43.qcow2\n" +
        "  foundry image import /path/to/debian-13-netinst.iso debian-13-netinst.iso\n",
    )
    .action(async (path: string, name: string, opts: { output: string }, cmd: Command) => {
      const { uri } = await configFor(cmd);
      const i = await withFoundryAudit(
        cmd,
        { resourceType: "image", name, uri, operation: "import", details: { path } },
        async (op) => {
          const r = await transfer(
            io,
            cmd,
            name,
            (lv, pool, t) => importImage(lv, pool, path, name, t),
          );
          op.object({ kind: "volume", name: `${r.pool}/${r.name}`, outcome: "created" });
          return r;
        },
        signalOption(),
      );
      printImported(io, opts.output, "Imported", i);
    });

  image.command("pull")
    .description("Download an image over HTTP(S) straight into the images pool")
    .argument("<url>", "image URL")
    .option("--name <name>", "image name (default: the URL's file name)")
    .option("--checksum <algo:hex>", "expected sha256:HEX or sha512:HEX of the download")
    .option(
      "--insecure-skip-checksum",
      "pull without --checksum, trusting whatever the server sends",
    )
    .option(
      "--max-size <size>",
      `largest download accepted (bytes or K/M/G/T; default ${DEFAULT_MAX_PULL_BYTES / 2 ** 30}G)`,
      parseMaxSize,
    )
    .option(
      "--connect-timeout <seconds>",
      `time allowed to connect (default ${DEFAULT_CONNECT_TIMEOUT_MS / 1000})`,
      parseSeconds,
    )
    .option(
      "--idle-timeout <seconds>",
      `time allowed without data, for the response and within the body (default ${
        DEFAULT_IDLE_TIMEOUT_MS / 1000
      })`,
      parseSeconds,
    )
    .addOption(outputOption())
    .addHelpText(
      "after",
      "\nOnly http and https URLs. A checksum is required unless --insecure-skip-checksum is given." +
        "\n\nExamples:\n  foundry image pull https://example.org/debian-12.qcow2 --checksum sha512:...\n",
    )
    .action(async (
      url: string,
      opts: {
        output: string;
        name?: string;
        checksum?: string;
        insecureSkipChecksum?: boolean;
        maxSize?: number;
        connectTimeout?: number;
        idleTimeout?: number;
      },
      cmd: Command,
    ) => {
      // Checked before the images pool is created or anything is fetched.
      checkPullUrl(url);
      if (opts.checksum === undefined && opts.insecureSkipChecksum !== true) {
        throw new ImageRequestError(
          `Give the expected checksum of ${
            redactUrl(url)
          } with --checksum sha256:HEX (or --insecure-skip-checksum to pull without one)`,
        );
      }
      const checksum = opts.checksum === undefined ? undefined : checksumFlag(opts.checksum);
      let label = opts.name ?? "download";
      try {
        label = opts.name ?? imageNameFromUrl(url);
      } catch { /* pullImage reports it */ }
      const { uri } = await configFor(cmd);
      const i = await withFoundryAudit(cmd, {
        resourceType: "image",
        name: label,
        uri,
        operation: "pull",
        details: { url: redactUrl(url), checksum: checksum?.algorithm ?? "skipped" },
      }, async (op) => {
        const r = await transfer(
          io,
          cmd,
          label,
          (lv, pool, t) =>
            pullImage(lv, pool, url, {
              ...t,
              ...(opts.name !== undefined ? { name: opts.name } : {}),
              ...(checksum !== undefined ? { checksum } : { insecureSkipChecksum: true }),
              ...(opts.maxSize !== undefined ? { maxBytes: opts.maxSize } : {}),
              ...(opts.connectTimeout !== undefined
                ? { connectTimeoutMs: opts.connectTimeout }
                : {}),
              ...(opts.idleTimeout !== undefined ? { idleTimeoutMs: opts.idleTimeout } : {}),
            }).catch((e) => {
              if (e instanceof PullLimitError) e.message += ` (${LIMIT_FLAG[e.limit]})`;
              throw e;
            }),
        );
        op.object({ kind: "volume", name: `${r.pool}/${r.name}`, outcome: "created" });
        return r;
      }, signalOption());
      printImported(io, opts.output, "Pulled", i);
    });

  addListingOptions(
    image.command("list").alias("ls")
      .description("List base images with format, sizes, checksum and how many disks use them"),
  )
    .addHelpText("after", "\n-o wide adds the full SHA-256 and PATH; -o name prints image/NAME.\n")
    .action(async (opts: ListingFlags, cmd: Command) => {
      const images = await withStorage(cmd, async (lv, config) => {
        try {
          await lookupPool(lv, config.imagesPool);
        } catch (e) {
          if (e instanceof StorageError) return []; // not created yet: no images
          throw e;
        }
        return await listImages(lv, config.imagesPool);
      });
      printListing(io, opts, images, {
        columns: IMAGE_COLUMNS,
        kind: "image",
        name: (i) => i.name,
        empty: "No images found",
      });
    });

  addListingOptions(
    image.command("info")
      .description("Show an image's path, checksum and the VMs whose disks use it")
      .argument("<name>", "image name"),
  )
    .addHelpText("after", "\n-o name prints image/NAME.\n")
    .action(async (name: string, opts: ListingFlags, cmd: Command) => {
      const i = await withStorage(cmd, (lv, config) => imageInfo(lv, config.imagesPool, name));
      printDetails(io, opts, i);
    });

  image.command("delete").alias("rm")
    .description("Delete an image (refused while a disk uses it, unless --force)")
    .argument("<name>", "image name")
    .option("--force", "delete even while disks use it as their backing store")
    .action(async (name: string, opts: { force?: boolean }, cmd: Command) => {
      const { uri } = await configFor(cmd);
      const uses = await withFoundryAudit(
        cmd,
        {
          resourceType: "image",
          name,
          uri,
          operation: "delete",
          details: { force: opts.force === true },
        },
        () =>
          withStorage(
            cmd,
            (lv, config) =>
              deleteImage(lv, config.imagesPool, name, { force: opts.force === true }),
          ),
        signalOption(),
      );
      for (const u of uses) {
        io.err(
          `Warning: ${u.volume ?? u.path}${u.vm ? ` (VM ${u.vm})` : ""} lost its base image\n`,
        );
      }
      io.out(`Image ${name} deleted\n`);
    });

  return image;
}

/** `--checksum`, parsed; a malformed value is a usage error (exit 2) before anything is fetched. */
function checksumFlag(text: string): Checksum {
  try {
    return parseChecksum(text);
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    throw Object.assign(new Error(`Invalid --checksum: ${err.message}`), { exitCode: 2 });
  }
}
