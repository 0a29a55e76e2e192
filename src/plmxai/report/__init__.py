"""Stage `report`: one self-contained HTML report from a run's tables (build), with the
figures of plmxai.plot embedded; reads tables only and never imports torch. Also: anchors
(this run's attention figures beside the published ones) and check (the report in a browser).
"""
