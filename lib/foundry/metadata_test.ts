import assert from "node:assert/strict";
import { ValidationError } from "./errors.ts";
import { buildDomainXml } from "./domain_xml.ts";
import {
  buildMetadataXml,
  METADATA_NAMESPACE,
  parseDomainMetadata,
  parseMetadataXml,
  parseStoredDomainMetadata,
  parseStoredMetadataXml,
  passwordHashChanged,
  passwordHashSha256,
  withoutPasswordHash,
} from "./metadata.ts";
import { sampleVm } from "./_testdata.ts";

Deno.test("buildMetadataXml() writes one element in the foundry namespace", () => {
  const xml = buildMetadataXml(withoutPasswordHash(sampleVm()));
  assert.match(xml, /^<foundry:vm xmlns:foundry="https:\/\/foundry\.cofront\.xyz\/v1alpha1">/);
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

Deno.test("a damaged record is a ValidationError naming the domain", () => {
  const spec = JSON.stringify({ ...sampleVm(), spec: { ...sampleVm().spec, vcpus: 0 } });
  const domain = `<domain type="kvm"><name>web-01</name><metadata>` +
    `<foundry:vm xmlns:foundry="${METADATA_NAMESPACE}">${spec}</foundry:vm></metadata></domain>`;
  assert.throws(
    () => parseDomainMetadata(domain),
    (e: unknown) =>
      e instanceof ValidationError && e.file === "domain web-01 metadata" &&
      e.path === "spec.vcpus",
  );
});
