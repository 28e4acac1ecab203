// Hovering (or focusing, for keyboard users) a node of an ASN.1 tree highlights its bytes in the
// hex view beside it: the tag and length octets in one colour, the content in another.
(function () {
  "use strict";
  function pane(li) { return li.closest(".explained"); }
  function clear(root) {
    root.querySelectorAll(".hex .b.h, .hex .b.c").forEach(function (b) { b.classList.remove("h", "c"); });
    root.querySelectorAll("li.active").forEach(function (li) { li.classList.remove("active"); });
  }
  function show(li) {
    var root = pane(li);
    if (!root) { return; }
    clear(root);
    li.classList.add("active");
    var s = +li.dataset.s, h = +li.dataset.h, e = +li.dataset.e;
    var bytes = root.querySelectorAll(".hex .b");
    for (var i = s; i < e && i < bytes.length; i++) { bytes[i].classList.add(i < h ? "h" : "c"); }
    if (bytes[s]) { bytes[s].scrollIntoView({ block: "nearest" }); }
  }
  document.querySelectorAll(".tree .node").forEach(function (node) {
    var li = node.parentElement;
    node.addEventListener("mouseenter", function () { show(li); });
    node.addEventListener("focus", function () { show(li); });
  });
}());
