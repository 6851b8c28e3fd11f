"""Indicator sharing between providers: STIX 2.1 bundles, a TAXII 2.1 collection, keyed-hash matching.

A campaign one provider confirmed becomes indicators another provider can match against its own
traffic the same day, without either side disclosing customer identifiers or prompt text: values
leave as HMACs under a key only the sharing group holds, prompt templates as keyed MinHash
signatures. See docs/intel.md.

Entry points: ``intel.export.export_bundle``, ``intel.importer.import_bundle``, ``intel.match.match_store``,
``intel.apply.apply_intel``, ``intel.taxii.build_taxii_app``, ``intel.poll.poll_collection``. They are not
re-exported here so that ``distillguard --help`` does not import stix2.
"""
