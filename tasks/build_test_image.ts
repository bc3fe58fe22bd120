#!/usr/bin/env -S deno run -A
/**
 * `deno task test-image`: builds the guest image the end-to-end test and `deno task demo` boot, a small
 * UEFI-bootable Debian 12 (bookworm) qcow2 with cloud-init (NoCloud) and qemu-guest-agent, from Debian's
 * packages with debootstrap. Needs root; installs the host tools it lacks with apt-get.
 *
 * The image is cached as `<cache>/<recipe-hash>.qcow2` (cache `/var/cache/foundry-test-image`, or
 * `$FOUNDRY_TEST_IMAGE_CACHE`) and rebuilt only when the recipe changes: the files under
 * `tasks/test_image/` and the constants below. `$FOUNDRY_TEST_IMAGE` names a ready image to use instead.
 *
 * How it is built, without loop devices or mounts of the image:
 * 1. debootstrap a minbase chroot with the kernel, systemd, the agent and the network tools, then
 *    `apt-get install cloud-init` inside it, overlay `tasks/test_image/rootfs/`, rebuild the initramfs;
 * 2. `grub-mkstandalone` an `EFI/BOOT/BOOTX64.EFI` with `tasks/test_image/grub.cfg` embedded, put it on a
 *    FAT ESP made with `mkfs.vfat` and `mcopy`;
 * 3. `mkfs.ext4 -d` the chroot into a file; lay out a GPT with `sgdisk` and write both filesystems at
 *    their partition offsets with `dd conv=notrunc`; `qemu-img convert -c` to qcow2.
 *
 * Run: `deno run -A tasks/build_test_image.ts [--force]`. Prints progress lines on stderr and one JSON
 * line on stdout: `{"image", "sha256", "bytes", "cached", "seconds"}`.
 * @module
 */

/** Debian release the image is built from. */
export const TEST_IMAGE_SUITE = "bookworm";
/** Label of the root filesystem; grub.cfg and fstab find the root by it. */
export const TEST_IMAGE_ROOT_LABEL = "foundry-root";
/** Default cache directory. */
export const TEST_IMAGE_CACHE_DIR = "/var/cache/foundry-test-image";
/** Environment variable naming a ready image to use instead of building one. */
export const TEST_IMAGE_ENV = "FOUNDRY_TEST_IMAGE";
/** Environment variable overriding the cache directory. */
export const TEST_IMAGE_CACHE_ENV = "FOUNDRY_TEST_IMAGE_CACHE";
/** Environment variable overriding the Debian mirror (not part of the recipe). */
export const TEST_IMAGE_MIRROR_ENV = "FOUNDRY_TEST_IMAGE_MIRROR";

/** Bumped when the build steps in this file change in a way that changes the image. */
const RECIPE_VERSION = 3;
const DEFAULT_MIRROR = "http://deb.debian.org/debian";
const MIB = 1024 * 1024;
const SECTOR = 512;
/** Virtual size of the disk; foundry's boot disk is an overlay with a larger capacity on top of it. */
const DISK_BYTES = 2048 * MIB;
const ESP_OFFSET = 1 * MIB;
const ESP_BYTES = 32 * MIB;
const ROOT_OFFSET = ESP_OFFSET + ESP_BYTES;
/** The last MiB stays free for the backup GPT. */
const ROOT_BYTES = DISK_BYTES - ROOT_OFFSET - 1 * MIB;
const GRUB_MODULES = [
  "part_gpt",
  "fat",
  "ext2",
  "search",
  "search_label",
  "normal",
  "linux",
  "echo",
  "test",
  "all_video",
];
const RECIPE_DIR = new URL("./test_image/", import.meta.url);

/** Host commands the build runs, with the Debian package that provides each. */
const HOST_TOOLS: ReadonlyArray<readonly [command: string, pkg: string]> = [
  ["debootstrap", "debootstrap"],
  ["grub-mkstandalone", "grub-common"],
  ["/usr/lib/grub/x86_64-efi/linux.mod", "grub-efi-amd64-bin"],
  ["mkfs.vfat", "dosfstools"],
  ["mcopy", "mtools"],
  ["sgdisk", "gdisk"],
  ["mkfs.ext4", "e2fsprogs"],
  ["qemu-img", "qemu-utils"],
  ["sha256sum", "coreutils"],
];

/** Options of {@linkcode buildTestImage}. */
export interface BuildTestImageOptions {
  /** Rebuild even when the cache holds an image for the current recipe. */
  force?: boolean;
  /** Cache directory; default `$FOUNDRY_TEST_IMAGE_CACHE` or `/var/cache/foundry-test-image`. */
  cacheDir?: string;
  /** Receives progress lines; default writes them to stderr. */
  log?: (line: string) => void;
}

/** The image {@linkcode buildTestImage} returns. */
export interface TestImage {
  /** Absolute path of the qcow2 file. Treat it as read-only: import a copy or put an overlay on it. */
  path: string;
  /** SHA-256 of the qcow2 file, hex. */
  sha256: string;
  /** Size of the qcow2 file in bytes. */
  bytes: number;
  /** Virtual size of the disk in bytes. */
  virtualBytes: number;
  /** True when the image came from the cache (or `$FOUNDRY_TEST_IMAGE`) rather than this call. */
  cached: boolean;
  /** Seconds this call took. */
  seconds: number;
  /** Hash of the recipe the image was built from (empty for `$FOUNDRY_TEST_IMAGE`). */
  recipeHash: string;
}

interface Sidecar {
  sha256: string;
  bytes: number;
  virtualBytes: number;
  recipeHash: string;
  builtAt: string;
  buildSeconds: number;
}

/** A host command the build runs failed. */
export class ImageBuildError extends Error {
  /** The command line that failed. */
  readonly command: string;
  /** Its exit code. */
  readonly code: number;
  /** Creates the error; `output` is the tail of the command's output. */
  constructor(command: string, code: number, output: string) {
    super(`${command}: exited with ${code}${output ? `\n${output}` : ""}`);
    this.name = "ImageBuildError";
    this.command = command;
    this.code = code;
  }
}

/** Recipe file paths relative to `tasks/test_image/`, sorted. */
async function recipeFiles(dir: URL = RECIPE_DIR, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isDirectory) {
      out.push(...await recipeFiles(new URL(`${e.name}/`, dir), `${prefix}${e.name}/`));
    } else if (e.isFile) out.push(`${prefix}${e.name}`);
  }
  return out.sort();
}

async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Hash of the recipe: the build constants, every file under `tasks/test_image/` by path and content.
 * @returns The first 16 hex digits of a SHA-256, the image's file name in the cache.
 */
export async function testImageRecipeHash(): Promise<string> {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [
    enc.encode(
      JSON.stringify({
        RECIPE_VERSION,
        TEST_IMAGE_SUITE,
        TEST_IMAGE_ROOT_LABEL,
        DISK_BYTES,
        ESP_BYTES,
        GRUB_MODULES,
      }) + "\n",
    ),
  ];
  for (const f of await recipeFiles()) {
    const body = await Deno.readFile(new URL(f, RECIPE_DIR));
    parts.push(enc.encode(`${f}\0${body.length}\0`), body);
  }
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return (await sha256Hex(all)).slice(0, 16);
}

function cacheDirOf(options: BuildTestImageOptions): string {
  return options.cacheDir ?? Deno.env.get(TEST_IMAGE_CACHE_ENV) ?? TEST_IMAGE_CACHE_DIR;
}

/**
 * Where the image for the current recipe lives in the cache, whether or not it has been built.
 * @returns `<cache>/<recipe-hash>.qcow2`, or `$FOUNDRY_TEST_IMAGE` when set.
 */
export async function testImagePath(
  options: Pick<BuildTestImageOptions, "cacheDir"> = {},
): Promise<string> {
  const override = Deno.env.get(TEST_IMAGE_ENV);
  if (override) return override;
  return `${cacheDirOf(options)}/${await testImageRecipeHash()}.qcow2`;
}

async function readList(name: string): Promise<string[]> {
  const text = await Deno.readTextFile(new URL(name, RECIPE_DIR));
  return text.split("\n").map((l) => l.replace(/#.*/, "").trim()).filter((l) => l !== "");
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

async function onPath(command: string): Promise<boolean> {
  if (command.startsWith("/")) return await exists(command);
  const dirs = (Deno.env.get("PATH") ?? "").split(":").concat(["/usr/sbin", "/sbin"]);
  for (const d of dirs) if (d && await exists(`${d}/${command}`)) return true;
  return false;
}

/** Runs the build's host commands, appending their output to a log file. */
class Runner {
  readonly #log: Deno.FsFile;
  readonly #env: Record<string, string>;

  constructor(log: Deno.FsFile) {
    this.#log = log;
    this.#env = {
      PATH: `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
      LC_ALL: "C.UTF-8",
      DEBIAN_FRONTEND: "noninteractive",
    };
  }

  /** Runs `cmd args`, returns its stdout; throws {@linkcode ImageBuildError} with the output's tail. */
  async run(cmd: string, args: string[]): Promise<string> {
    const line = [cmd, ...args].join(" ");
    const enc = new TextEncoder();
    await this.#log.write(enc.encode(`$ ${line}\n`));
    const out = await new Deno.Command(cmd, {
      args,
      env: this.#env,
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    await this.#log.write(out.stdout);
    await this.#log.write(out.stderr);
    if (!out.success) {
      const dec = new TextDecoder();
      const tail = (dec.decode(out.stdout) + dec.decode(out.stderr)).trimEnd().split("\n").slice(
        -25,
      )
        .join("\n");
      throw new ImageBuildError(line, out.code, tail);
    }
    return new TextDecoder().decode(out.stdout);
  }

  /** Runs a command inside the chroot. */
  chroot(root: string, args: string[]): Promise<string> {
    return this.run("chroot", [root, ...args]);
  }
}

async function ensureHostTools(log: (line: string) => void): Promise<void> {
  const missing: string[] = [];
  for (const [command, pkg] of HOST_TOOLS) {
    if (!await onPath(command) && !missing.includes(pkg)) missing.push(pkg);
  }
  if (missing.length === 0) return;
  log(`installing host packages: ${missing.join(" ")}`);
  const install = () =>
    new Deno.Command("apt-get", {
      args: ["install", "-y", "--no-install-recommends", ...missing],
      env: { DEBIAN_FRONTEND: "noninteractive" },
      stdout: "null",
      stderr: "piped",
    }).output();
  let out = await install();
  if (!out.success) {
    await new Deno.Command("apt-get", { args: ["update"], stdout: "null", stderr: "null" })
      .output();
    out = await install();
  }
  if (!out.success) {
    throw new ImageBuildError(
      `apt-get install ${missing.join(" ")}`,
      out.code,
      new TextDecoder().decode(out.stderr).trim(),
    );
  }
}

/** Mount points under `dir` (from /proc/self/mountinfo), deepest first. */
async function mountsUnder(dir: string): Promise<string[]> {
  const info = await Deno.readTextFile("/proc/self/mountinfo");
  return info.split("\n").map((l) => l.split(" ")[4] ?? "")
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

async function unmountAll(dir: string): Promise<void> {
  for (let round = 0; round < 3; round++) {
    const mounts = await mountsUnder(dir);
    if (mounts.length === 0) return;
    for (const m of mounts) {
      await new Deno.Command("umount", { args: ["--lazy", m], stdout: "null", stderr: "null" })
        .output();
    }
  }
  const left = await mountsUnder(dir);
  if (left.length > 0) throw new Error(`Expected no mounts under ${dir}, found ${left.join(", ")}`);
}

/** Removes the build directory, never while anything is mounted under it (a bound /dev). */
async function removeBuildDir(dir: string): Promise<void> {
  await unmountAll(dir);
  await Deno.remove(dir, { recursive: true }).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
}

async function copyTree(from: URL, to: string): Promise<void> {
  for await (const e of Deno.readDir(from)) {
    const dest = `${to}/${e.name}`;
    if (e.isDirectory) {
      await Deno.mkdir(dest, { recursive: true });
      await copyTree(new URL(`${e.name}/`, from), dest);
    } else if (e.isFile) {
      await Deno.remove(dest).catch(() => {});
      await Deno.writeFile(dest, await Deno.readFile(new URL(e.name, from)), { mode: 0o644 });
      await Deno.chmod(dest, 0o644);
    }
  }
}

/** Kernel and initramfs file names in the chroot's /boot. */
async function bootFiles(root: string): Promise<{ kernel: string; initrd: string }> {
  const names: string[] = [];
  for await (const e of Deno.readDir(`${root}/boot`)) names.push(e.name);
  const kernels = names.filter((n) => n.startsWith("vmlinuz-")).sort();
  const kernel = kernels.at(-1);
  if (kernel === undefined) {
    throw new Error(`Expected a kernel in ${root}/boot, found ${names.join(", ")}`);
  }
  const initrd = `initrd.img-${kernel.slice("vmlinuz-".length)}`;
  if (!names.includes(initrd)) {
    throw new Error(`Expected ${initrd} in ${root}/boot, found ${names.join(", ")}`);
  }
  return { kernel, initrd };
}

async function buildRootfs(
  run: Runner,
  root: string,
  debCache: string,
  log: (line: string) => void,
): Promise<void> {
  const mirror = Deno.env.get(TEST_IMAGE_MIRROR_ENV) ?? DEFAULT_MIRROR;
  const include = await readList("debootstrap_packages.txt");
  log(`debootstrap ${TEST_IMAGE_SUITE} minbase from ${mirror} (${include.length} extra packages)`);
  await Deno.mkdir(debCache, { recursive: true });
  await run.run("debootstrap", [
    "--variant=minbase",
    `--include=${include.join(",")}`,
    `--cache-dir=${debCache}`,
    TEST_IMAGE_SUITE,
    root,
    mirror,
  ]);

  // No service may start inside the chroot while packages are configured.
  await Deno.writeTextFile(`${root}/usr/sbin/policy-rc.d`, "#!/bin/sh\nexit 101\n", {
    mode: 0o755,
  });
  await run.run("mount", ["-t", "proc", "proc", `${root}/proc`]);
  await run.run("mount", ["-t", "sysfs", "sysfs", `${root}/sys`]);
  await run.run("mount", ["--bind", "/dev", `${root}/dev`]);
  await run.run("mount", ["--bind", "/dev/pts", `${root}/dev/pts`]);
  try {
    const pkgs = await readList("apt_packages.txt");
    log(`apt-get install ${pkgs.join(" ")} in the chroot`);
    await run.chroot(root, ["apt-get", "install", "-y", "--no-install-recommends", ...pkgs]);
    // postgresql-common's postinst made a cluster on the root file system; the image carries none
    // (the database workload creates its own on its data disk). The cluster never ran
    // (policy-rc.d), so dropping it only removes its configuration and data directory.
    await run.chroot(root, [
      "sh",
      "-c",
      "command -v pg_lsclusters >/dev/null || exit 0; " +
      'pg_lsclusters -h | while read -r ver name _; do pg_dropcluster "$ver" "$name" || exit 1; done',
    ]);

    log("configuring: recipe files, initramfs, machine-id, apt caches");
    await copyTree(new URL("rootfs/", RECIPE_DIR), root);
    await run.chroot(root, ["update-initramfs", "-u", "-k", "all"]);
    // Timers that would only spend a TCG guest's CPU.
    await run.chroot(root, [
      "systemctl",
      "disable",
      "apt-daily.timer",
      "apt-daily-upgrade.timer",
      "dpkg-db-backup.timer",
      "e2scrub_all.timer",
      "fstrim.timer",
    ]);
    // Boot-time units a short-lived test guest has no use for, each seconds of an emulated CPU
    // in the boot profile (systemd-analyze blame): e2scrub_reap looks for ext4 check snapshots
    // that never exist, systemd-binfmt mounts binfmt_misc for foreign binaries that never run.
    await run.chroot(root, [
      "systemctl",
      "mask",
      "e2scrub_reap.service",
      "systemd-binfmt.service",
      "proc-sys-fs-binfmt_misc.automount",
    ]);
    await run.chroot(root, ["apt-get", "clean"]);
  } finally {
    await unmountAll(root);
  }
  await Deno.remove(`${root}/usr/sbin/policy-rc.d`);
  // Each guest generates its own machine-id on first boot; cloud-init sets the hostname.
  await Deno.writeTextFile(`${root}/etc/machine-id`, "");
  await Deno.remove(`${root}/var/lib/dbus/machine-id`).catch(() => {});
  await Deno.writeTextFile(`${root}/etc/hostname`, "localhost\n");
  // openssh-server's postinst made host keys; every guest must make its own (cloud-init does).
  for await (const e of Deno.readDir(`${root}/etc/ssh`)) {
    if (e.name.startsWith("ssh_host_")) await Deno.remove(`${root}/etc/ssh/${e.name}`);
  }
  for (const dir of ["var/lib/apt/lists", "tmp", "var/tmp"]) {
    for await (const e of Deno.readDir(`${root}/${dir}`)) {
      if (e.name !== "lock" && e.name !== "partial") {
        await Deno.remove(`${root}/${dir}/${e.name}`, { recursive: true });
      }
    }
  }
  for (const link of ["vmlinuz.old", "initrd.img.old"]) {
    await Deno.remove(`${root}/${link}`).catch(() => {});
  }
}

async function buildEsp(run: Runner, work: string, root: string): Promise<string> {
  const { kernel, initrd } = await bootFiles(root);
  const template = await Deno.readTextFile(new URL("grub.cfg", RECIPE_DIR));
  const cfg = template.split("\n").filter((l) => !l.startsWith("#")).join("\n")
    .replaceAll("@ROOT_LABEL@", TEST_IMAGE_ROOT_LABEL)
    .replaceAll("@KERNEL@", kernel)
    .replaceAll("@INITRD@", initrd);
  await Deno.writeTextFile(`${work}/grub.cfg`, cfg);
  const efi = `${work}/BOOTX64.EFI`;
  await run.run("grub-mkstandalone", [
    "--format=x86_64-efi",
    `--output=${efi}`,
    `--modules=${GRUB_MODULES.join(" ")}`,
    `--install-modules=${GRUB_MODULES.join(" ")}`,
    "--locales=",
    "--fonts=",
    "--themes=",
    `boot/grub/grub.cfg=${work}/grub.cfg`,
  ]);
  const esp = `${work}/esp.img`;
  await run.run("mkfs.vfat", ["-C", "-n", "ESP", esp, String(ESP_BYTES / 1024)]);
  await run.run("mmd", ["-i", esp, "::/EFI", "::/EFI/BOOT"]);
  await run.run("mcopy", ["-i", esp, efi, "::/EFI/BOOT/BOOTX64.EFI"]);
  return esp;
}

async function assembleDisk(
  run: Runner,
  work: string,
  esp: string,
  rootImg: string,
): Promise<string> {
  const raw = `${work}/disk.raw`;
  const f = await Deno.open(raw, { write: true, create: true, truncate: true });
  await f.truncate(DISK_BYTES);
  f.close();
  const espFirst = ESP_OFFSET / SECTOR;
  const espLast = (ESP_OFFSET + ESP_BYTES) / SECTOR - 1;
  const rootFirst = ROOT_OFFSET / SECTOR;
  const rootLast = (ROOT_OFFSET + ROOT_BYTES) / SECTOR - 1;
  await run.run("sgdisk", [
    "--clear",
    `--new=1:${espFirst}:${espLast}`,
    "--typecode=1:EF00",
    "--change-name=1:ESP",
    `--new=2:${rootFirst}:${rootLast}`,
    // Linux x86-64 root (systemd's discoverable partitions type).
    "--typecode=2:8304",
    "--change-name=2:root",
    raw,
  ]);
  for (const [img, offset] of [[esp, ESP_OFFSET], [rootImg, ROOT_OFFSET]] as const) {
    await run.run("dd", [
      `if=${img}`,
      `of=${raw}`,
      "bs=1M",
      `seek=${offset / MIB}`,
      "conv=notrunc,sparse",
      "status=none",
    ]);
  }
  return raw;
}

async function build(
  run: Runner,
  work: string,
  cacheDir: string,
  out: string,
  log: (line: string) => void,
): Promise<void> {
  const root = `${work}/rootfs`;
  await buildRootfs(run, root, `${cacheDir}/debs`, log);

  log("ESP: grub-mkstandalone, mkfs.vfat, mcopy");
  const esp = await buildEsp(run, work, root);

  log(`root filesystem: mkfs.ext4 -d (${ROOT_BYTES / MIB} MiB)`);
  const rootImg = `${work}/root.img`;
  const f = await Deno.open(rootImg, { write: true, create: true, truncate: true });
  await f.truncate(ROOT_BYTES);
  f.close();
  await run.run("mkfs.ext4", ["-q", "-F", "-L", TEST_IMAGE_ROOT_LABEL, "-d", root, rootImg]);
  await removeBuildDir(root);

  log("disk: GPT with sgdisk, filesystems written at their offsets");
  const raw = await assembleDisk(run, work, esp, rootImg);
  await Deno.remove(rootImg);

  log("qcow2: qemu-img convert -c");
  await run.run("qemu-img", ["convert", "-c", "-f", "raw", "-O", "qcow2", raw, out]);
}

/** The cache's lock file; read-only when a non-root caller only looks for a cached image. */
async function openLock(path: string): Promise<Deno.FsFile> {
  try {
    return await Deno.open(path, { read: true, write: true, create: true });
  } catch (e) {
    if (e instanceof Deno.errors.PermissionDenied) return await Deno.open(path, { read: true });
    throw e;
  }
}

/**
 * Removes the images, sidecars and logs of other recipes: callers import a copy of the image into
 * a libvirt pool, so nothing keeps using a file of an older recipe.
 */
async function pruneOtherRecipes(cacheDir: string, keep: string, log: (line: string) => void) {
  for await (const e of Deno.readDir(cacheDir)) {
    const m = /^(?:build-)?([0-9a-f]{16})\.(?:qcow2|json|log)$/.exec(e.name);
    if (e.isFile && m && m[1] !== keep) {
      await Deno.remove(`${cacheDir}/${e.name}`);
      log(`removed ${e.name} of an older recipe`);
    }
  }
}

async function readSidecar(path: string): Promise<Sidecar | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as Sidecar;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof SyntaxError) return undefined;
    throw e;
  }
}

async function sha256File(path: string): Promise<string> {
  const out = await new Deno.Command("sha256sum", { args: [path], stderr: "inherit" }).output();
  if (!out.success) throw new ImageBuildError(`sha256sum ${path}`, out.code, "");
  return new TextDecoder().decode(out.stdout).split(" ")[0] ?? "";
}

/**
 * Returns the test image, building it first when the cache has none for the current recipe (or when
 * `force` is set). Builds need root. Concurrent callers on one machine wait for one build.
 *
 * @example Boot disk for an end-to-end test
 * ```ts ignore
 * import { buildTestImage } from "./tasks/build_test_image.ts";
 * const image = await buildTestImage();
 * console.log(image.path, image.cached ? "from the cache" : `built in ${image.seconds} s`);
 * ```
 */
export async function buildTestImage(options: BuildTestImageOptions = {}): Promise<TestImage> {
  const t0 = performance.now();
  const log = options.log ?? ((line: string) => console.error(`test-image: ${line}`));
  const seconds = () => Math.round((performance.now() - t0) / 100) / 10;

  const override = Deno.env.get(TEST_IMAGE_ENV);
  if (override) {
    const st = await Deno.stat(override);
    const sidecar = await readSidecar(override.replace(/\.qcow2$/, "") + ".json");
    const sha256 = sidecar?.bytes === st.size ? sidecar.sha256 : await sha256File(override);
    log(`using ${override} from $${TEST_IMAGE_ENV}`);
    return {
      path: override,
      sha256,
      bytes: st.size,
      virtualBytes: sidecar?.virtualBytes ?? 0,
      cached: true,
      seconds: seconds(),
      recipeHash: sidecar?.recipeHash ?? "",
    };
  }

  const cacheDir = cacheDirOf(options);
  const hash = await testImageRecipeHash();
  const path = `${cacheDir}/${hash}.qcow2`;
  const sidecarPath = `${cacheDir}/${hash}.json`;
  await Deno.mkdir(cacheDir, { recursive: true });

  const lock = await openLock(`${cacheDir}/.lock`);
  try {
    await lock.lock(true);
    if (!options.force) {
      const sidecar = await readSidecar(sidecarPath);
      const st = await Deno.stat(path).catch(() => undefined);
      if (sidecar && st?.size === sidecar.bytes) {
        log(`recipe ${hash}: cached ${path}`);
        return {
          path,
          sha256: sidecar.sha256,
          bytes: sidecar.bytes,
          virtualBytes: sidecar.virtualBytes,
          cached: true,
          seconds: seconds(),
          recipeHash: hash,
        };
      }
    }

    if (Deno.uid() !== 0) {
      throw new Error(`Expected to run as root to build the test image, got uid ${Deno.uid()}`);
    }
    log(`recipe ${hash}: building ${path}`);
    await ensureHostTools(log);
    const work = `${cacheDir}/build-${hash}`;
    const logPath = `${cacheDir}/build-${hash}.log`;
    await removeBuildDir(work);
    await Deno.mkdir(work, { recursive: true });
    const logFile = await Deno.open(logPath, { write: true, create: true, truncate: true });
    const run = new Runner(logFile);
    const tmp = `${work}/image.qcow2`;
    try {
      const step = (line: string) => log(`[${seconds().toFixed(0).padStart(4)} s] ${line}`);
      await build(run, work, cacheDir, tmp, step);
      const st = await Deno.stat(tmp);
      const sha256 = await sha256File(tmp);
      await Deno.rename(tmp, path);
      const sidecar: Sidecar = {
        sha256,
        bytes: st.size,
        virtualBytes: DISK_BYTES,
        recipeHash: hash,
        builtAt: new Date().toISOString(),
        buildSeconds: seconds(),
      };
      await Deno.writeTextFile(sidecarPath, JSON.stringify(sidecar, null, 2) + "\n");
      step(`done: ${path} (${(st.size / MIB).toFixed(0)} MiB)`);
      await pruneOtherRecipes(cacheDir, hash, log);
      return {
        path,
        sha256,
        bytes: st.size,
        virtualBytes: DISK_BYTES,
        cached: false,
        seconds: seconds(),
        recipeHash: hash,
      };
    } catch (e) {
      log(`build failed; the full log is ${logPath}`);
      throw e;
    } finally {
      logFile.close();
      await removeBuildDir(work);
    }
  } finally {
    await lock.unlock().catch(() => {});
    lock.close();
  }
}

/**
 * Command line: `build_test_image.ts [--force]`. Prints one JSON line on stdout.
 * @returns The exit code: 0 on success, 1 on a failed build, 2 on bad arguments.
 */
export async function main(args: string[]): Promise<number> {
  const unknown = args.filter((a) => a !== "--force");
  if (unknown.length > 0) {
    console.error(`usage: build_test_image.ts [--force]; got ${unknown.join(" ")}`);
    return 2;
  }
  try {
    const image = await buildTestImage({ force: args.includes("--force") });
    console.log(JSON.stringify({
      image: image.path,
      sha256: image.sha256,
      bytes: image.bytes,
      cached: image.cached,
      seconds: image.seconds,
    }));
    return 0;
  } catch (e) {
    console.error(`test-image: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
