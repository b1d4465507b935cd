"""The stack's status page, rendered from real publications and parsed back.
"""
from html.parser import HTMLParser

from pkgdir import REVISION, change_package
from publishing import OTHER, PKGS, at, publish_params

from ansible_collections.gentoo_binhost.infra.plugins.module_utils._publish import publish
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._stack import Stack
from ansible_collections.gentoo_binhost.infra.plugins.module_utils._status_page import render_index


class _Checker(HTMLParser):
    VOID = {"meta", "br", "img", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.text, self.classes = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.classes += [(tag, dict(attrs).get("class"), "".join(self.text[-1:]))]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append("unexpected </%s> with %s open" % (tag, self.stack))
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def test_render_index_lists_generations_and_changes(src, dest):
    prov = {"snapshot": {"tag": "2026-11-19<script>", "commit": REVISION}, "portage_version": "3.0.83",
            "overlays": [{"name": "myoverlay", "commit": OTHER}], "stage": {"file": "/x/stage3-amd64.tar.xz"}}
    first = publish(publish_params(src, dest, provenance=prov, name="Stack <one>"), now=at(1))["generation"]
    change_package(src, "dev-libs/libfoo-2.3-r1")
    second = publish(publish_params(src, dest, provenance=prov, name="Stack <one>"), now=at(2))["generation"]
    page = (dest / "index.html").read_text()
    checker = _Checker()
    checker.feed(page)
    checker.close()
    assert page.startswith("<!DOCTYPE html>") and checker.errors == [] and checker.stack == []
    text = "".join(checker.text)
    assert "<script>" not in page and "2026-11-19<script>" in text
    assert "Stack <one>" in text
    assert page.index('id="g-%s"' % second) < page.index('id="g-%s"' % first)
    assert '<section class="generation current" id="g-%s">' % second in page
    assert '<a href="generations/%s/">%s</a>' % (first, first) in page
    assert '<li class="rebuilt">dev-libs/libfoo-2.3-r1</li>' in page
    for cpv in (p["cpv"] for p in PKGS):
        assert '<li class="added">%s</li>' % cpv in page
    assert "myoverlay 222222222222" in text and "stage3-amd64.tar.xz" in text
    assert render_index("Stack <one>", Stack(str(dest))) == page
