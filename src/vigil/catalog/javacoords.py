"""Maven coordinates of a Java archive from what it declares (pure: text in, coordinates out).

The order, strongest evidence first (docs/image-contents.md, "Java coordinates"):

1. ``META-INF/maven/<group>/<artifact>/pom.properties``, written by Maven itself;
2. else ``pom.xml`` in the same directory: its ``groupId``/``version``, inherited from ``<parent>``
   when absent, and the directory names when the file leaves them out;
3. else the manifest: a Jenkins plugin's ``Group-Id``/``Short-Name``/``Plugin-Version``; or the
   version from ``Implementation-Version``/``Bundle-Version``, the group from
   ``Implementation-Vendor-Id`` or recovered from ``Bundle-SymbolicName`` where the symbolic name
   confirms it, and the artifact from the file name. ``Implementation-Title`` is a display title
   ("Apache Tomcat" on every Tomcat jar), never an artifact id;
4. the file name: ``artifact-version`` or sbt's ``group.artifact-version``, the version split where
   the archive's declared version says, the group split off only where the archive declares it.

A Java agent (``Premain-Class``, ``Agent-Class`` or ``Launcher-Agent-Class`` in its manifest) without
Maven identity (no pom file, no declared group) is not a package: its name and version are the
agent's product, not a Maven artifact an advisory could be about.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

AGENT_ATTRIBUTES = ("Premain-Class", "Agent-Class", "Launcher-Agent-Class")
_NAME_VERSION = re.compile(r"^(?P<name>.+?)-(?P<version>\d[\w.+-]*)$")
_ARTIFACT_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_PROPERTY = re.compile(r"\$\{([^}]+)\}")
# Groups under which a project publishes some of its jars, where the symbolic name cannot say so:
# Tomcat names every jar's bundle "org.apache.tomcat-<artifact>", and publishes the embedded ones
# (tomcat-embed-*) under org.apache.tomcat.embed.
_PUBLISHED_GROUPS = {("org.apache.tomcat", "tomcat-embed-"): "org.apache.tomcat.embed"}


@dataclass(frozen=True, slots=True)
class Coordinates:
    group: str | None
    artifact: str
    version: str
    source: str  # which declaration they were read from: pom.properties, pom.xml, MANIFEST.MF, file name


class PomError(ValueError):
    """A pom.xml that is not read: the reason names the rule."""


def parse_properties(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def parse_manifest(text: str) -> dict[str, str]:
    """Main section of a JAR manifest (continuation lines start with a space)."""
    out: dict[str, str] = {}
    last = None
    for line in text.splitlines():
        if not line.strip():
            break  # end of the main section
        if line.startswith(" ") and last is not None:
            out[last] += line[1:]
            continue
        key, sep, value = line.partition(":")
        if sep:
            last = key.strip()
            out[last] = value.strip()
    return out


def from_pom_properties(props: dict[str, str], dir_group: str | None = None) -> Coordinates | None:
    """``dir_group``: the ``META-INF/maven/<group>/`` directory it sits in, for a file without groupId."""
    artifact, version = props.get("artifactId"), props.get("version")
    if not artifact or not version:
        return None
    return Coordinates(props.get("groupId") or dir_group or None, artifact, version, "pom.properties")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child_text(element: ET.Element, name: str) -> str | None:
    for child in element:
        if _local(child.tag) == name:
            text = (child.text or "").strip()
            return text or None
    return None


def from_pom_xml(data: bytes, dir_group: str, dir_artifact: str) -> Coordinates | None:
    """Coordinates of the project a ``pom.xml`` describes; ``dir_group``/``dir_artifact`` are the
    names of the ``META-INF/maven/<group>/<artifact>/`` directory it sits in, used where the file
    leaves a field out. None when no version can be known; PomError for a file not read."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        # A pom never needs a DTD; entity definitions are how an XML file expands itself.
        raise PomError("has a DOCTYPE or ENTITY declaration; not parsed")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise PomError(f"not well-formed XML ({exc})") from None
    if _local(root.tag) != "project":
        raise PomError(f"root element is <{_local(root.tag)}>, not <project>")
    parent = next((c for c in root if _local(c.tag) == "parent"), None)
    parent_group = _child_text(parent, "groupId") if parent is not None else None
    parent_version = _child_text(parent, "version") if parent is not None else None
    group = _child_text(root, "groupId") or parent_group or dir_group
    artifact = _child_text(root, "artifactId") or dir_artifact
    version = _child_text(root, "version") or parent_version
    properties: dict[str, str] = {}
    props_element = next((c for c in root if _local(c.tag) == "properties"), None)
    if props_element is not None:
        for c in props_element:
            if isinstance(c.tag, str) and c.text:
                properties[_local(c.tag)] = c.text.strip()
    known = {
        **properties,
        "project.groupId": group,
        "pom.groupId": group,
        "project.artifactId": artifact,
        "project.parent.version": parent_version or "",
        "parent.version": parent_version or "",
        "project.parent.groupId": parent_group or "",
    }
    version = _resolve(version, known) if version else None
    group = _resolve(group, known) or dir_group
    if not version:
        return None
    return Coordinates(group, _resolve(artifact, known) or dir_artifact, version, "pom.xml")


def _resolve(value: str | None, known: dict[str, str]) -> str | None:
    """``${name}`` references replaced from the pom's own properties, one level deep; None when one
    is left (a version read from a profile or the command line is not in the file)."""
    if value is None:
        return None
    out = _PROPERTY.sub(lambda m: known.get(m.group(1)) or m.group(0), value)
    return None if "${" in out else out


def split_file_name(stem: str, declared_version: str | None) -> tuple[str, str | None]:
    """(name, version) from an archive's file name without its suffix: where the archive declares a
    version and the name ends in it, the split is there (``log4j-1.2-api-2.17.1``), else at the
    first ``-`` followed by a digit."""
    if declared_version and stem.endswith("-" + declared_version) and len(stem) > len(declared_version) + 1:
        return stem[: -len(declared_version) - 1], declared_version
    m = _NAME_VERSION.match(stem)
    if m:
        return m.group("name"), m.group("version")
    return stem, None


def group_from_symbolic_name(symbolic: str, artifact: str) -> tuple[str, str] | None:
    """(group, artifact) when ``Bundle-SymbolicName`` is what the bundle tools make of a group and
    ``artifact``; the artifact may come back longer (``catalina`` in ``org.apache.tomcat-catalina``
    is artifact ``tomcat-catalina``). Conventions tried, in order:

    - ``<group>.<artifact>`` (``com.fasterxml.jackson.core.jackson-core``, ``org.yaml.snakeyaml``);
    - the artifact repeats the group's last segment: ``org.apache.tomcat-embed-core`` for
      ``tomcat-embed-core``, ``org.apache.commons.lang3`` for ``commons-lang3`` (maven-bundle-plugin
      drops the repeated segment), ``org.apache.tomcat-catalina`` for a jar named ``catalina``;
    - the artifact is the last segment of a group the symbolic name starts with
      (``org.postgresql.jdbc`` for ``postgresql``).

    The first two can both fit (``org.apache`` + ``tomcat-embed-core``); ``<group>.<artifact>`` wins
    where the group already holds the artifact's first word (``jackson`` in
    ``com.fasterxml.jackson.core``), the repeated segment wins otherwise.
    """
    exact = (
        symbolic[: -len(artifact) - 1]
        if symbolic.endswith("." + artifact) and len(symbolic) > len(artifact) + 1
        else None
    )
    repeated: tuple[str, str] | None = None
    for i, sep in enumerate(symbolic):
        if sep not in ".-" or i == 0:
            continue
        group, tail = symbolic[:i], symbolic[i + 1 :]
        last = group.rsplit(".", 1)[-1]
        if artifact.startswith(last) and len(artifact) > len(last):
            rest = artifact[len(last) :]
            if symbolic[i:] == rest or (sep == "." and rest[0] in "-_." and tail == rest[1:]):
                repeated = (group, artifact)
                break
        if sep == "-" and tail == artifact:
            repeated = (group, f"{last}-{artifact}")
            break
    first_word = re.split(r"[-_.]", artifact, maxsplit=1)[0]
    if exact is not None and (repeated is None or first_word in exact.split(".")):
        return exact, artifact
    if repeated is not None:
        return repeated
    parts = symbolic.split(".")
    for k in range(len(parts) - 1, 0, -1):
        if parts[k - 1] == artifact:
            return ".".join(parts[:k]), artifact
    return None


def _sbt_split(name: str, symbolic: str) -> tuple[str, str] | None:
    """sbt's ``group.artifact`` file name, split where the symbolic name confirms both parts
    (``org.apache.commons.commons-lang3`` with ``org.apache.commons.lang3``)."""
    for k, c in enumerate(name):
        if c == "." and 0 < k < len(name) - 1:
            group, artifact = name[:k], name[k + 1 :]
            if group_from_symbolic_name(symbolic, artifact) == (group, artifact):
                return group, artifact
    return None


def _published_group(group: str, artifact: str) -> str:
    for (g, prefix), published in _PUBLISHED_GROUPS.items():
        if group == g and artifact.startswith(prefix):
            return published
    return group


def is_agent(manifest: dict[str, str]) -> bool:
    return any(manifest.get(a) for a in AGENT_ATTRIBUTES)


def from_manifest(manifest: dict[str, str], stem: str) -> Coordinates | None:
    """Coordinates from the manifest and the file name (``stem``: the name without its suffix);
    None when no version is declared anywhere or the archive is an agent without Maven identity."""
    if manifest.get("Short-Name") and manifest.get("Plugin-Version"):
        # A Jenkins plugin (.hpi/.jpi): its manifest carries the plugin's Maven coordinates.
        return Coordinates(
            manifest.get("Group-Id") or None, manifest["Short-Name"], manifest["Plugin-Version"], "MANIFEST.MF"
        )
    declared = manifest.get("Implementation-Version") or manifest.get("Bundle-Version") or None
    name, file_version = split_file_name(stem, declared)
    version = declared or file_version
    if not version:
        return None
    source = "MANIFEST.MF" if declared else "file name"
    symbolic = manifest.get("Bundle-SymbolicName", "").split(";", 1)[0].strip()
    vendor_id = manifest.get("Implementation-Vendor-Id", "").strip() or None
    group: str | None = None
    artifact = name
    if vendor_id and name.startswith(vendor_id + ".") and len(name) > len(vendor_id) + 1:
        group, artifact = vendor_id, name[len(vendor_id) + 1 :]  # sbt's group.artifact-version.jar
    elif vendor_id:
        group = vendor_id
    elif symbolic:
        sbt = _sbt_split(name, symbolic)
        if sbt is not None:
            group, artifact = sbt
        elif name == symbolic and "." in name:
            # sbt's file name, spelled as the symbolic name: the artifact is after the last dot.
            group, _, artifact = name.rpartition(".")
        else:
            candidates = [name]
            bundle_name = manifest.get("Bundle-Name", "").strip()
            if _ARTIFACT_ID.match(bundle_name) and bundle_name != name:
                candidates.append(bundle_name)
            for candidate in candidates:
                hit = group_from_symbolic_name(symbolic, candidate)
                if hit is not None:
                    group, artifact = hit
                    break
        if group is not None:
            source = "MANIFEST.MF"
    if group is None and is_agent(manifest):
        return None
    if group is not None:
        group = _published_group(group, artifact)
    return Coordinates(group, artifact, version, source)
