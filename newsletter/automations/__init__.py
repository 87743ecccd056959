"""Automations: new posts become issues by themselves (a feed automation, one issue per post) and
digests are made every week or month (a digest automation). See ``rules`` (what may be set),
``slots`` (when), ``wording`` (subject and preheader), ``configure`` (setting one) and ``runner``
(the round the scheduler runs)."""
