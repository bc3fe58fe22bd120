/**
 * The `--target kubevirt` options of `foundry apply` and `foundry diff`, and the test that hands a
 * run to cli/foundry/_kubevirt_target.ts. Light on purpose (commander only): apply and diff load
 * it at start-up, the Kubernetes client only when the target is asked for.
 * @module
 */
import { type Command, Option } from "npm:commander@^15.1.0";

const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), v];

/** Adds `--target` and the `kubevirt:` options to apply or diff. */
export function withKubevirtOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option("--target <target>", "libvirt (default) or kubevirt").choices([
        "libvirt",
        "kubevirt",
      ]),
    )
    .option("--kubeconfig <path>", "kubevirt: kubeconfig file (default: in-cluster, KUBECONFIG)")
    .option("--context <name>", "kubevirt: kubeconfig context")
    .option("-n, --namespace <name>", "kubevirt: namespace (default: default)")
    .option("--image-url <source>", "kubevirt: boot image of every VM, http(s) URL or pvc:NS/NAME")
    .option("--image <name=source>", "kubevirt: image source by the spec's name (repeat)", collect)
    .option("--install-media-url <source>", "kubevirt: installation ISO, URL or pvc:NS/NAME")
    .option("--create-networks", "kubevirt: create missing NetworkAttachmentDefinitions")
    .option("--storage-class <name>", "kubevirt: storage class of new DataVolumes")
    .option("--allow-lossy", "kubevirt: accept fields KubeVirt carries over only in part");
}

/** Whether `cmd` runs on KubeVirt: `--target kubevirt`, or a `kubevirt:` option given alone. */
export function wantsKubevirt(cmd: Command): boolean {
  if (cmd.getOptionValue("target") === "kubevirt") return true;
  return cmd.options.some((o) =>
    o.description.startsWith("kubevirt:") &&
    cmd.getOptionValueSource(o.attributeName()) !== undefined
  );
}
