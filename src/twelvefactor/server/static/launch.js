// The launch form's message hint follows the chosen agent (each option carries its own).
"use strict";
(() => {
  const agent = document.getElementById("launch-agent");
  const message = document.getElementById("launch-message");
  if (!agent || !message) return;
  const follow = () => {
    const hint = agent.selectedOptions[0]?.dataset.placeholder;
    if (hint !== undefined) message.placeholder = hint;
  };
  agent.addEventListener("change", follow);
  follow();
})();
