import assert from "node:assert/strict";
import { buildDomainXml } from "./domain_xml.ts";
import {
  buildMetadataXml,
  canonicalJson,
  cloudInitSha256,
  type CreatedVolume,
  METADATA_NAMESPACE,
  parseDomainMetadata,
  parseMetadataXml,
  parseStoredDomainMetadata,
  parseStoredMetadataXml,
  passwordHashChanged,
  passwordHashSha256,
  specSha256,
  STORED_SPEC_ERROR_ANNOTATION,
  storedMetadataXml,
  VOLUMES_NAMESPACE,
  withoutPasswordHash,
} from "./metadata.ts";
import { sampleVm, workloadVm } from "./_testdata.ts";

Deno.test("buildMetadataXml() writes one element in the foundry namespace", () => {
  const xml = buildMetadataXml(withoutPasswordHash(sampleVm()));
  assert.match(xml, /^<foundry:vm xmlns:foundry="https:\/\/foundry\.cofront\.xyz\/v1alpha1"[ >]/);
  assert.match(xml, /<\/foundry:vm>$/);
  assert.equal(METADATA_NAMESPACE, "https://foundry.cofront.xyz/v1alpha1");
});

Deno.test("parseMetadataXml() reads back exactly what was stored, without status", () => {
  const vm = sampleVm();
  vm.metadata.annotations = { tricky: `<a href="x">&amp; ' ]]>` };
  vm.status = { phase: "Running", observedGeneration: 1 };
  const back = parseMetadataXml(buildMetadataXml(vm));
  delete vm.status;
  assert.deepEqual(back, withoutPasswordHash(vm));
});

Deno.test("the password hash never reaches the metadata, only its SHA-256", () => {
  const vm = sampleVm();
  const hash = vm.spec.cloudInit!.passwordHash!;
  const fingerprint = passwordHashSha256(hash);
  assert.match(fingerprint, /^[0-9a-f]{64}$/);
  const element = buildMetadataXml(vm);
  const domain = buildDomainXml(vm, { domainType: "qemu" });
  for (const xml of [element, domain]) {
    assert.ok(!xml.includes(hash), "the hash is in the XML");
    assert.ok(
      !xml.includes(hash.slice(hash.lastIndexOf("$") + 1)),
      "the hash's digest is in the XML",
    );
    assert.ok(
      !xml.includes(JSON.stringify(hash).slice(1, -1)),
      "the JSON-escaped hash is in the XML",
    );
  }
  assert.match(element, new RegExp(` passwordHashSha256="${fingerprint}"`));
  assert.equal(vm.spec.cloudInit!.passwordHash, hash, "building does not change the VM");
  const stored = parseStoredMetadataXml(element)!;
  assert.equal(stored.passwordHashSha256, fingerprint);
  assert.deepEqual(stored.vm, withoutPasswordHash(sampleVm()));
  assert.equal(parseStoredDomainMetadata(domain)?.passwordHashSha256, fingerprint);
});

Deno.test("passwordHashChanged() compares a spec's hash with the stored fingerprint", () => {
  const stored = parseStoredMetadataXml(buildMetadataXml(sampleVm()))!;
  assert.equal(passwordHashChanged(stored, sampleVm()), false);
  const changed = sampleVm();
  changed.spec.cloudInit!.passwordHash = "$6$other$x";
  assert.equal(passwordHashChanged(stored, changed), true);
  assert.equal(passwordHashChanged(stored, withoutPasswordHash(sampleVm())), true);
  const none = parseStoredMetadataXml(buildMetadataXml(withoutPasswordHash(sampleVm())))!;
  assert.equal(none.passwordHashSha256, undefined);
  assert.equal(passwordHashChanged(none, withoutPasswordHash(sampleVm())), false);
  assert.equal(passwordHashChanged(none, sampleVm()), true);
});

Deno.test("a VM whose cloudInit held only the hash reads back with an empty cloudInit", () => {
  const vm = sampleVm();
  vm.spec.cloudInit = { passwordHash: "$6$salt$abc" };
  const stored = parseStoredMetadataXml(buildMetadataXml(vm))!;
  assert.deepEqual(stored.vm.spec.cloudInit, {});
  assert.equal(stored.passwordHashSha256, passwordHashSha256("$6$salt$abc"));
});

Deno.test("parseMetadataXml() accepts any prefix bound to the foundry namespace", () => {
  const json = JSON.stringify(sampleVm());
  const escaped = json.replaceAll("&", "&amp;").replaceAll("<", "&lt;");
  const other = `<f:vm xmlns:f="${METADATA_NAMESPACE}">${escaped}</f:vm>`;
  assert.deepEqual(parseMetadataXml(other), sampleVm());
  const unprefixed = `<vm xmlns="${METADATA_NAMESPACE}">${escaped}</vm>`;
  assert.deepEqual(parseMetadataXml(unprefixed), sampleVm());
});

Deno.test("parseMetadataXml() accepts the bare element virDomainGetMetadata returns", () => {
  const escaped = JSON.stringify(sampleVm()).replaceAll("&", "&amp;").replaceAll("<", "&lt;");
  assert.deepEqual(parseMetadataXml(`<vm>${escaped}</vm>`), sampleVm());
  assert.equal(parseMetadataXml(`<vm xmlns="urn:other">${escaped}</vm>`), undefined);
  assert.equal(parseMetadataXml(`<other>${escaped}</other>`), undefined);
});

Deno.test("metadata of other tools is not taken for foundry's", () => {
  assert.equal(
    parseMetadataXml(`<foundry:vm xmlns:foundry="https://example.org/x">{}</foundry:vm>`),
    undefined,
  );
  assert.equal(parseMetadataXml(`<other:vm xmlns:other="urn:x">{}</other:vm>`), undefined);
  const domain = `<domain type="kvm"><name>alien</name><metadata>` +
    `<libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0">` +
    `<libosinfo:os id="http://debian.org/debian/12"/></libosinfo:libosinfo></metadata></domain>`;
  assert.equal(parseDomainMetadata(domain), undefined);
  assert.equal(parseDomainMetadata(`<domain type="kvm"><name>bare</name></domain>`), undefined);
});

Deno.test("parseDomainMetadata() finds foundry's element among others", () => {
  const domain = `<domain type="kvm"><name>web-01</name><metadata>` +
    `<libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0"/>` +
    buildMetadataXml(sampleVm()) + `</metadata><vcpu>2</vcpu></domain>`;
  assert.deepEqual(parseDomainMetadata(domain), withoutPasswordHash(sampleVm()));
});

Deno.test("a stored spec today's rules refuse is still read, as stored", () => {
  const sample = sampleVm();
  const future = {
    ...sample,
    metadata: { ...sample.metadata, uid: "u-1" },
    spec: { ...sample.spec, vcpus: 0, gpu: { model: "virtio" } },
  };
  const domain = `<domain type="kvm"><name>web-01</name><metadata>` +
    `<foundry:vm xmlns:foundry="${METADATA_NAMESPACE}">${JSON.stringify(future)}</foundry:vm>` +
    `</metadata></domain>`;
  assert.deepEqual(parseDomainMetadata(domain), future);
});

Deno.test("fields foundry reads back keep their types; an unreadable spec is flagged", () => {
  const odd = {
    metadata: { labels: { a: "b", n: 1 }, generation: -1 },
    spec: { networkInterfaces: [{ ip: "10.0.0.2/24" }, "eth1", { ip: 7 }], dataDisks: 3 },
  };
  const read = (text: string) =>
    parseDomainMetadata(
      `<domain type="kvm"><name>web-01</name><metadata>` +
        `<foundry:vm xmlns:foundry="${METADATA_NAMESPACE}">${text}</foundry:vm></metadata></domain>`,
    )!;
  const vm = read(JSON.stringify(odd));
  assert.equal(vm.metadata.name, "web-01", "the domain's name when the spec has none");
  assert.deepEqual(vm.metadata.labels, { a: "b" });
  assert.equal(vm.metadata.generation, undefined);
  assert.deepEqual(vm.spec.networkInterfaces, [{ ip: "10.0.0.2/24" }]);
  assert.deepEqual(vm.spec.dataDisks, []);
  const broken = read("{not json");
  assert.equal(broken.metadata.name, "web-01");
  assert.deepEqual(broken.spec.networkInterfaces, []);
  assert.match(broken.metadata.annotations?.[STORED_SPEC_ERROR_ANNOTATION] ?? "", /not JSON/);
});

Deno.test("the record of created volumes is written beside the spec and read back", () => {
  const volumes: CreatedVolume[] = [
    { role: "boot", pool: "vms", name: "web-01_boot", key: "/v/web-01_boot" },
    { role: "cloudinit", pool: "vms", name: "web-01_cloudinit", key: "/v/web-01_cloudinit" },
  ];
  const uuid = "9d2f5c1e-2b1a-4c3d-8e7f-0a1b2c3d4e5f";
  const domain = buildDomainXml(sampleVm(), { domainType: "qemu", volumes, uuid });
  assert.match(
    domain,
    new RegExp(
      `<foundryvolumes:volumes xmlns:foundryvolumes="${VOLUMES_NAMESPACE}" domainUuid="${uuid}">`,
    ),
  );
  assert.deepEqual(parseStoredDomainMetadata(domain)?.volumes, volumes);
  assert.equal(parseStoredDomainMetadata(domain)?.volumesDomainUuid, uuid);
  assert.equal(
    parseStoredDomainMetadata(buildDomainXml(sampleVm(), { domainType: "qemu" }))?.volumes,
    undefined,
  );
  // Entries missing a field are ignored, never guessed.
  const damaged = domain.replace("&quot;/v/web-01_boot&quot;", "&quot;&quot;");
  assert.deepEqual(parseStoredDomainMetadata(damaged)?.volumes, volumes.slice(1));
});

Deno.test("a workload's serials and user-data extras survive the domain XML round trip", () => {
  const vm = workloadVm();
  const back = parseStoredDomainMetadata(buildDomainXml(vm, { domainType: "qemu" }));
  assert.deepEqual(back?.vm.spec.dataDisks, vm.spec.dataDisks);
  assert.deepEqual(back?.vm.spec.cloudInit?.userData, vm.spec.cloudInit?.userData);
});

Deno.test("storedMetadataXml() rewrites a stored spec (resize) keeping the password fingerprint", () => {
  const vm = sampleVm();
  const fingerprint = passwordHashSha256(vm.spec.cloudInit!.passwordHash!);
  const stored = parseStoredMetadataXml(buildMetadataXml(vm))!;
  stored.vm.spec.vcpus = 3;
  stored.vm.metadata.annotations = { tricky: `<b>&amp; ]]>` };
  const xml = storedMetadataXml(stored.vm, stored.passwordHashSha256);
  // Bare element: virDomainSetMetadata binds the prefix and namespace itself.
  assert.match(xml, new RegExp(`^<vm passwordHashSha256="${fingerprint}"[ >]`));
  const back = parseStoredMetadataXml(xml)!;
  assert.equal(back.passwordHashSha256, fingerprint);
  assert.deepEqual(back.vm, stored.vm);
  assert.equal(back.vm.spec.vcpus, 3);
  assert.ok(!storedMetadataXml(stored.vm).includes("passwordHashSha256"));
});

Deno.test("canonicalJson() sorts keys at every depth and keeps array order", () => {
  assert.equal(
    canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: undefined } }),
    '{"a":{"d":[3,{"y":2,"z":1}]},"b":1}',
  );
});

Deno.test("specSha256() ignores key order, status and the password hash, and sees any field", () => {
  const vm = sampleVm();
  const digest = specSha256(vm);
  assert.match(digest, /^[0-9a-f]{64}$/);
  const reordered = JSON.parse(
    JSON.stringify({
      spec: vm.spec,
      metadata: vm.metadata,
      kind: vm.kind,
      apiVersion: vm.apiVersion,
    }),
  );
  assert.equal(specSha256(reordered), digest);
  assert.equal(specSha256({ ...vm, status: { phase: "Running" } }), digest);
  assert.equal(specSha256(withoutPasswordHash(vm)), digest);
  assert.notEqual(specSha256({ ...vm, spec: { ...vm.spec, vcpus: vm.spec.vcpus + 1 } }), digest);
});

Deno.test("cloudInitSha256() changes with the password and cloud-init, not with sizes, and hides the hash", () => {
  const vm = sampleVm();
  const hash = vm.spec.cloudInit!.passwordHash!;
  const digest = cloudInitSha256(vm);
  // A stored spec (no hash) with the stored fingerprint gives the same digest.
  assert.equal(cloudInitSha256(withoutPasswordHash(vm), passwordHashSha256(hash)), digest);
  assert.notEqual(cloudInitSha256(withoutPasswordHash(vm)), digest);
  const other = {
    ...vm,
    spec: { ...vm.spec, cloudInit: { ...vm.spec.cloudInit, passwordHash: hash + "x" } },
  };
  assert.notEqual(cloudInitSha256(other), digest);
  // The instance ID (which follows every field) is left out: a size change is not a cloud-init change.
  assert.equal(
    cloudInitSha256({ ...vm, spec: { ...vm.spec, memoryGiB: vm.spec.memoryGiB * 2 } }),
    digest,
  );
  const keys = {
    ...vm,
    spec: {
      ...vm.spec,
      cloudInit: {
        ...vm.spec.cloudInit,
        sshAuthorizedKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOther other@x"],
      },
    },
  };
  assert.notEqual(cloudInitSha256(keys), digest);
});

Deno.test("the stored element carries both hashes, and rewriting keeps them consistent", () => {
  const vm = sampleVm();
  const stored = parseStoredMetadataXml(buildMetadataXml(vm))!;
  assert.equal(stored.specSha256, specSha256(vm));
  assert.equal(stored.cloudInitSha256, cloudInitSha256(vm));
  assert.equal(specSha256(stored.vm), stored.specSha256);
  const again = parseStoredMetadataXml(storedMetadataXml(stored.vm, stored.passwordHashSha256))!;
  assert.equal(again.specSha256, stored.specSha256);
  assert.equal(again.cloudInitSha256, stored.cloudInitSha256);
  assert.ok(!buildMetadataXml(vm).includes(vm.spec.cloudInit!.passwordHash!));
  // A VM stored before hashes: both undefined.
  const old = parseStoredMetadataXml(`<vm>${JSON.stringify(withoutPasswordHash(vm))}</vm>`)!;
  assert.equal(old.specSha256, undefined);
  assert.equal(old.cloudInitSha256, undefined);
});
